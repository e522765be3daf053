"""Rendering of `ocync sync`: the dry-run view, the live progress line, argument checks."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ocync.cli import sync_cmd
from ocync.cli.main import build_parser
from ocync.engine.cache import TransferCache
from ocync.engine.pipeline import SyncEngine
from ocync.engine.report import RunReport


def test_dry_run_view() -> None:
    report = RunReport(dry_run=True, requests=7)
    report.plan = {
        "mappings": [
            {
                "mapping": "mappings[0] src/lib/a -> org/a",
                "listed": 5,
                "selected": ["1.0", "2.0"],
                "stages": [
                    {"name": "glob", "kept": 5, "dropped": 0, "added": 0},
                    {"name": "exclude (soft)", "kept": 3, "dropped": 2, "added": 0},
                    {"name": "latest", "kept": 2, "dropped": 1, "added": 0},
                ],
                "would_copy": [
                    {"tag": "2.0", "digest": "sha256:" + "a" * 64, "targets": ["ghcr/org/a"],
                     "blobs": 4, "bytes": 3 * 1024 * 1024},
                ],
                "up_to_date": ["1.0"],
                "errors": [],
            }
        ]
    }
    text = sync_cmd._render_dry_run(report)
    assert "5 tags listed, 2 selected (exclude (soft) -2, latest -1)" in text
    assert "would copy 2.0 sha256:aaaaaaaaaaaa (4 blobs, 3.0 MiB) -> ghcr/org/a" in text
    assert "up to date: 1 tag(s)" in text
    assert text.endswith("dry run: 7 requests, 0 throttled, 0.0s")


def test_live_progress_line() -> None:
    from tests.unit.test_engine_pipeline import FakeRegistry

    src, dst = FakeRegistry("src"), FakeRegistry("dst")
    src.calls["manifest_head"] = 30
    engine = SyncEngine([], {"src": src}, {"dst": dst}, TransferCache())
    progress = sync_cmd._LiveProgress()
    progress.console = Console(file=io.StringIO())
    progress.tick(engine)  # renders without a terminal and without raising
    rendered = str(progress.live.renderable)
    assert "images 0 done, 0 in flight, 0 to copy so far" in rendered
    assert "req/min in all" in rendered
    # what the line is drawn from: the engine's public progress, one entry per endpoint
    state = engine.progress()
    assert (state.results, state.in_flight, state.expected) == (0, 0, 0)
    assert {ep.name: ep.requests for ep in state.endpoints} == {
        "src": sum(src.request_counts().values()), "dst": sum(dst.request_counts().values())
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["sync", "-c", "x.yaml", "--rate-share", "0"],
        ["sync", "-c", "x.yaml", "--rate-share", "1.5"],
        ["sync", "-c", "x.yaml", "--drain-timeout", "-1"],
        ["sync"],
    ],
)
def test_bad_arguments_exit_3(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 3
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        pytest.param(command, option, value, id=f"{command}{option}={value}")
        for command in ("sync", "watch")
        for option, value in (
            ("--drain-timeout", "nan"),
            ("--drain-timeout", "inf"),
            ("--drain-timeout", "-0.5"),
            ("--rate-share", "nan"),
        )
    ]
    + [pytest.param("watch", "--interval", "nan", id="watch--interval=nan")],
)
def test_non_finite_and_negative_numbers_are_one_line_exit_3(
    command: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "-c", "x.yaml", option, value])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and repr(value) in err, err


@pytest.mark.parametrize("command", ["sync", "watch"])
def test_drain_timeout_zero_and_finite_values_are_accepted(command: str) -> None:
    for value, expected in (("0", 0.0), ("2.5", 2.5)):
        args = build_parser().parse_args([command, "-c", "x.yaml", "--drain-timeout", value])
        assert args.drain_timeout == expected
