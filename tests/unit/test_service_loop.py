"""The watch loop under trio's MockClock with a scripted runner: when cycles start (interval,
cron, failure backoff), what health says in between, the config re-read every cycle, and the
controllers and cache handed to every cycle being the same objects."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import trio.testing

from ocync.config import Config, LoadedConfig, load_config_file
from ocync.engine.report import ImageResult, ImageStatus, RunReport
from ocync.engine.syncrun import RunOptions
from ocync.errors import TransportError, Unauthorized
from ocync.service.loop import WatchOptions, WatchService, failed_outcome
from ocync.service.schedule import CronSchedule, FailureBackoff, IntervalSchedule, next_cycle_at

EPOCH = 1_800_000_000.0  # a wall-clock start on a half-hour boundary (UTC)
SEED = 7


def write_config(path: Path, repos: list[str]) -> Path:
    maps = "".join(f"  - {{from: {r}, to: mirror/{r}}}\n" for r in repos)
    path.write_text(
        f"global: {{cache_dir: '{path.parent / 'cache'}'}}\n"
        "registries:\n  src: {url: '127.0.0.1:9'}\n  dst: {url: '127.0.0.1:9'}\n"
        f"defaults: {{source: src, targets: dst}}\nmappings:\n{maps}"
    )
    return path


class ScriptedRunner:
    """Fails the cycles listed in ``failing`` (1-based), succeeds the others; remembers each
    call's start time, mapping count and the long-lived objects it was given."""

    def __init__(self, failing: set[int], on_cycle: dict[int, object] | None = None) -> None:
        self.failing = failing
        self.on_cycle = on_cycle or {}
        self.starts: list[float] = []
        self.mappings: list[int] = []
        self.handed: set[tuple[int, int]] = set()

    async def __call__(self, config: Config, options: RunOptions) -> RunReport:
        self.starts.append(trio.current_time())
        self.mappings.append(len(config.resolve()))
        self.handed.add((id(options.controllers), id(options.cache)))
        action = self.on_cycle.get(len(self.starts))
        if callable(action):
            action()
        await trio.sleep(0.5)  # a cycle takes half a second of (mock) time
        if len(self.starts) in self.failing:
            raise TransportError("registry src: connection refused")
        report = RunReport()
        report.add(ImageResult("m", "src/a:1", "dst/mirror/a:1", ImageStatus.SKIPPED))
        return report


def service(cfg: Path, runner: ScriptedRunner, **kw: object) -> WatchService:
    options = WatchOptions(config_path=str(cfg), seed=SEED, **kw)  # type: ignore[arg-type]
    return WatchService(options, load_config_file(str(cfg)).config, runner=runner,
                        wall=lambda: EPOCH + trio.current_time(), loader=load_here)


async def load_here(path: str) -> LoadedConfig:
    """The config read on the trio thread: a worker thread would let MockClock jump meanwhile."""
    await trio.lowlevel.checkpoint()
    return load_config_file(path)


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_failures_back_off_growing_then_reset_by_a_success(tmp_path: Path, mock_clock: object) -> None:
    cfg = write_config(tmp_path / "ocync.yaml", ["a/one"])
    runner = ScriptedRunner(failing={2, 3, 4})
    backoff = FailureBackoff(base=2, maximum=300)
    svc = service(cfg, runner, schedule=IntervalSchedule(1.0), backoff=backoff, max_runs=6,
                  unready_after=3)
    code = await svc.run()
    assert code == 0 and svc.state.cycles == 6
    rng = random.Random(SEED)
    expected, failures = [runner.starts[0]], 0
    for n in range(1, 6):  # after cycle n (1-based) ended, half a second after it started
        failures = failures + 1 if n in runner.failing else 0
        end = expected[-1] + 0.5
        expected.append(next_cycle_at(IntervalSchedule(1.0), backoff, end, failures, rng.random()))
    assert runner.starts == pytest.approx(expected), f"seed {SEED}"
    gaps = [b - a for a, b in zip(runner.starts, runner.starts[1:], strict=False)]
    assert gaps[1] < gaps[2] < gaps[3], gaps  # the backoff grows while failures continue
    assert gaps[4] == pytest.approx(1.5), gaps  # and a success resets it to the interval
    assert len(runner.handed) == 1  # one ControllerRegistry and one TransferCache for all cycles
    assert svc.state.readiness().status == 200


async def test_k_failures_make_it_unready_and_it_stays_alive(tmp_path: Path, mock_clock: object) -> None:
    cfg = write_config(tmp_path / "ocync.yaml", ["a/one"])
    svc = service(cfg, ScriptedRunner(failing={2, 3, 4}), schedule=IntervalSchedule(1.0),
                  max_runs=4, unready_after=3)
    await svc.run()
    assert svc.state.readiness().reason["status"] == "failing"
    assert svc.state.liveness(trio.current_time()).ok
    assert svc.exit_code == 2


async def test_cron_cycles_start_on_their_slots(tmp_path: Path, mock_clock: object) -> None:
    cfg = write_config(tmp_path / "ocync.yaml", ["a/one"])
    runner = ScriptedRunner(failing=set())
    svc = service(cfg, runner, schedule=CronSchedule("*/30 * * * *"), max_runs=3)
    await svc.run()
    walls = [EPOCH + t for t in runner.starts]
    assert [w - walls[0] for w in walls] == [0, 1800, 3600]


async def test_config_edits_take_effect_and_a_bad_one_keeps_the_last_good(
    tmp_path: Path, mock_clock: object
) -> None:
    cfg = write_config(tmp_path / "ocync.yaml", ["a/one"])
    states: list[dict[str, object]] = []
    svc: WatchService

    def break_it() -> None:
        cfg.write_text(cfg.read_text() + "mappings: [\n")

    def look() -> None:
        states.append(svc.state.readiness().reason)

    def fix_it() -> None:
        look()
        write_config(cfg, ["a/one", "a/two"])

    runner = ScriptedRunner(failing=set(), on_cycle={1: break_it, 2: look, 3: fix_it})
    svc = service(cfg, runner, schedule=IntervalSchedule(1.0), max_runs=4)
    await svc.run()
    assert runner.mappings == [1, 1, 1, 2]  # the old config kept running, then the new one
    assert states[0]["status"] == "config_invalid" and str(states[0]["error"]).startswith(f"{cfg}:")
    assert svc.state.readiness().status == 200


async def test_signals_between_cycles_and_sighup(tmp_path: Path, mock_clock: object,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "ocync.yaml", ["a/one"])
    runner = ScriptedRunner(failing=set())
    svc = service(cfg, runner, schedule=IntervalSchedule(3600.0), sigterm_exits_0=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(svc.run)
        await trio.sleep(10)  # cycle 1 done; waiting an hour for cycle 2
        svc.deliver_signal("SIGHUP")  # starts cycle 2 now
        await trio.sleep(10)
        assert len(runner.starts) == 2 and runner.starts[1] == pytest.approx(10.0)
        svc.deliver_signal("SIGTERM")
        assert svc.state.readiness().reason == {"status": "draining"}
    assert capsys.readouterr().err.strip().endswith("ocync: interrupted between runs: nothing left undone")


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        pytest.param(TransportError("registry src: connection refused"), 2,
                     "registry src: connection refused", id="ours"),
        pytest.param(OSError(28, "No space left on device"), 2,
                     "OSError: [Errno 28] No space left on device", id="disk-full"),
        pytest.param(ExceptionGroup("nursery", [Unauthorized("auth: registry dst: 401 unauthorized", status=401)]), 4,
                     "auth: registry dst: 401 unauthorized",
                     id="group-of-ours"),
    ],
)
def test_a_raised_cycle_is_one_line_with_its_exit_code(exc: Exception, code: int, line: str | None) -> None:
    outcome = failed_outcome(exc)
    assert outcome.outcome == "failed" and outcome.exit_code == code
    assert "\n" not in outcome.fatal and outcome.fatal
    if line is not None:
        assert outcome.fatal == line
