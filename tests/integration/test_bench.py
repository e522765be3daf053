"""The benchmark plumbing: scenario table, report rendering, and the raw-socket load generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stress import bench
from stress.loadgen import RawConnection, hammer_heads, repeated_digest, upload_blob
from stress.mockproc import MockProcess


@pytest.mark.parametrize(
    ("metric", "ok"),
    [
        pytest.param(bench.Metric("x", 310, "MB/s", 300), True, id="above-target"),
        pytest.param(bench.Metric("x", 290, "MB/s", 300), False, id="below-target"),
        pytest.param(
            bench.Metric("x", 5, "MiB", 32, higher_is_better=False), True, id="under-limit"
        ),
        pytest.param(
            bench.Metric("x", 40, "MiB", 32, higher_is_better=False), False, id="over-limit"
        ),
        pytest.param(bench.Metric("x", 1, "s"), None, id="informational"),
    ],
)
def test_metric_ok(metric: bench.Metric, ok: bool | None) -> None:
    assert metric.ok is ok


def test_runner_merges_results_and_renders_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []

    def fake(ctx: bench.BenchContext) -> bench.ScenarioResult:
        calls.append(ctx.quick)
        return bench.ScenarioResult([bench.Metric("speed", 1234.5, "MB/s", 300)], {"n": 1})

    def broken(ctx: bench.BenchContext) -> bench.ScenarioResult:
        raise RuntimeError("the server fell over\nsecond line")

    monkeypatch.setitem(bench.SCENARIOS, "fake_one", bench.Scenario("fake_one", "a fake", fake))
    monkeypatch.setitem(bench.SCENARIOS, "fake_two", bench.Scenario("fake_two", "broken", broken))
    bench.run(["fake_one"], quick=True, results_dir=tmp_path)
    report = bench.run(["fake_two"], quick=False, results_dir=tmp_path)
    assert calls == [True]
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved == report
    assert saved["scenarios"]["fake_one"]["metrics"][0]["ok"] is True  # kept from the first run
    assert saved["scenarios"]["fake_two"]["error"] == "the server fell over"
    markdown = (tmp_path / "bench.md").read_text()
    assert "| fake_one (quick) | speed | 1,234 MB/s | >= 300 MB/s | yes |" in markdown
    assert "| fake_two | error: the server fell over | | | no |" in markdown
    with pytest.raises(SystemExit, match="unknown scenario"):
        bench.run(["no_such_scenario"], quick=True, results_dir=tmp_path)


def test_scenario_names_are_registered_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        bench.scenario("mock_download", "again")(lambda ctx: bench.ScenarioResult())
    for name in ("mock_download", "mock_upload", "mock_small_requests", "mock_memory"):
        assert name in bench.SCENARIOS


def test_load_generator_against_the_mock_process() -> None:
    with MockProcess(["--profile", "generic"]) as mock:
        conn = RawConnection(mock.url)
        chunk = b"0123456789abcdef" * 4096  # 64 KiB
        digest = repeated_digest(chunk, 8)
        done = upload_blob(conn, "loadgen/a", chunk, 8, digest, streamed=True)
        assert done.headers["docker-content-digest"] == digest
        got = conn.request("GET", f"/v2/loadgen/a/blobs/{digest}")
        assert got.status == 200 and got.body == chunk * 8
        sunk = conn.request("GET", f"/v2/loadgen/a/blobs/{digest}", sink=True)
        assert sunk.body == b"" and sunk.body_length == len(chunk) * 8
        with pytest.raises(RuntimeError, match="400"):
            upload_blob(conn, "loadgen/a", chunk, 1, repeated_digest(b"other", 1))
        conn.close()
        rate = hammer_heads(mock.url, f"/v2/loadgen/a/blobs/{digest}", connections=2, seconds=0.3)
        assert rate.requests > 10 and rate.errors == 0
        stats = mock.stats()
        heads = stats["by_kind"]["blob_head"]  # type: ignore[index]
        assert rate.requests <= heads <= rate.requests + 2  # plus the one in flight per connection
        assert mock.peak_rss_bytes() >= mock.rss_bytes() > 0
    assert mock.returncode == 0  # SIGTERM is a clean exit
