"""``ocync watch`` arguments: the chart's flags parse; bad values are one line, exit 3."""

from __future__ import annotations

import pytest

from ocync.cli.main import build_parser
from ocync.cli.watch_cmd import watch_options
from ocync.service.schedule import CronSchedule, IntervalSchedule


def test_the_charts_flags() -> None:
    args = build_parser().parse_args(
        ["watch", "-c", "/config/ocync.yaml", "--health-port", "8080", "--health-bind", "0.0.0.0",
         "--schedule", "*/30 * * * *", "--log-format", "json"])
    options = watch_options(args)
    assert options.schedule == CronSchedule("*/30 * * * *") and args.health_port == 8080
    assert args.health_bind == "0.0.0.0" and args.log_format == "json" and options.sigterm_exits_0
    plain = watch_options(build_parser().parse_args(["watch", "-c", "x.yaml", "--interval", "60"]))
    assert plain.schedule == IntervalSchedule(60.0) and not plain.sigterm_exits_0


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--schedule", "every hour"], id="bad-cron"),
        pytest.param(["--interval", "5", "--schedule", "* * * * *"], id="interval-and-schedule"),
        pytest.param(["--health-port", "70000"], id="port-range"),
        pytest.param(["--health-port", "http"], id="port-text"),
        pytest.param(["--log-format", "xml"], id="log-format"),
        pytest.param(["--max-runs", "-1"], id="max-runs"),
    ],
)
def test_bad_values_are_one_line_exit_3(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["watch", "-c", "x.yaml", *argv])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("command", ["sync", "copy"])
def test_log_format_on_sync_and_copy(command: str) -> None:
    argv = [command, "-c", "x.yaml"] if command == "sync" else [command, "a/b:1", "c/d:1"]
    assert build_parser().parse_args([*argv, "--log-format", "json"]).log_format == "json"
