"""The watch loop: one trio run for the service's life. Each cycle re-reads the config (an
invalid one keeps the last good one running), runs the engine with the controllers and the
transfer cache that live across cycles, and records the outcome for health, metrics and the
heartbeat. Only SIGTERM/SIGINT end it; SIGHUP starts the next cycle at once.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ocync.config import Config, LoadedConfig, load_config_file
from ocync.engine.cache import CacheStatistics, TransferCache
from ocync.engine.cachefile import CacheFile
from ocync.engine.pipeline import SyncEngine
from ocync.engine.report import RunReport, redact
from ocync.engine.syncrun import RunInterrupt, RunOptions, run_sync
from ocync.errors import ConfigError, OcyncError
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.ratelimit.statistics import ControllerStatistics
from ocync.service.heartbeat import Heartbeat
from ocync.service.metrics import ServiceMetrics
from ocync.service.schedule import FailureBackoff, Schedule, next_cycle_at
from ocync.service.state import DEFAULT_LIVENESS_FLOOR, DEFAULT_UNREADY_AFTER, ServiceState

log = logging.getLogger("ocync.service")


@dataclass(frozen=True, slots=True)
class WatchOptions:
    config_path: str
    schedule: Schedule
    backoff: FailureBackoff = field(default_factory=FailureBackoff)
    drain_timeout: float = 25.0
    rate_share: float | None = None
    timeout: float | None = None
    max_runs: int = 0  # 0: until a signal
    # SIGTERM is an orchestrator's ordinary stop: with a health port (a service), a drained
    # SIGTERM exits 0 and the next start picks up what is left undone
    sigterm_exits_0: bool = False
    liveness_floor: float = DEFAULT_LIVENESS_FLOOR
    unready_after: int = DEFAULT_UNREADY_AFTER
    seed: int | None = None  # the backoff jitter's; None: from the OS


async def _load_in_thread(path: str) -> LoadedConfig:
    """The config file, read and validated off the trio thread (a slow volume cannot stall
    the health endpoints)."""
    return await trio.to_thread.run_sync(load_config_file, path)


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    outcome: str  # ok | partial | failed | interrupted
    exit_code: int
    fatal: str = ""  # the one-line reason of a failed cycle
    report: RunReport | None = None


def classify(report: RunReport) -> CycleOutcome:
    code = report.exit_code()
    if report.interrupted:
        return CycleOutcome("interrupted", code, report=report)
    if code >= 2:
        problems = report.problem_lines()
        return CycleOutcome("failed", code, problems[0] if problems else "failed", report)
    return CycleOutcome("ok" if code == 0 else "partial", code, report=report)


def failed_outcome(exc: Exception) -> CycleOutcome:
    """A cycle that raised: one redacted line; an exception group (a nursery's) by its first
    leaf, with our own errors' exit code."""
    leaf: BaseException = exc
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    text = redact(str(leaf).splitlines()[0]) if str(leaf) else ""
    if isinstance(leaf, OcyncError):
        return CycleOutcome("failed", leaf.exit_code, text or type(leaf).__name__)
    return CycleOutcome("failed", 2, f"{type(leaf).__name__}: {text}".rstrip(": "))


class WatchService:
    def __init__(
        self,
        options: WatchOptions,
        config: Config,
        *,
        on_report: Callable[[RunReport], None] = lambda report: None,
        wall: Callable[[], float] = time.time,
        runner: Callable[[Config, RunOptions], Awaitable[RunReport]] = run_sync,
        loader: Callable[[str], Awaitable[LoadedConfig]] | None = None,
    ) -> None:
        self.options = options
        self.config = config  # the last good one
        self.on_report = on_report
        self.wall = wall
        self.runner = runner
        self.loader = loader or _load_in_thread
        self.state = ServiceState(options.schedule.period(wall()), options.liveness_floor,
                                  options.unready_after)
        self.heartbeat = Heartbeat(options.schedule.period(wall()))
        self.exit_code = 0
        self.stop_signal: str | None = None
        self._random = random.Random(options.seed)
        self._controllers: tuple[float, ControllerRegistry] | None = None
        self._cache: tuple[str, TransferCache] | None = None
        self._interrupt: RunInterrupt | None = None
        self._sleep = trio.CancelScope()
        self._progress: tuple[int, ...] = ()
        self.metrics = ServiceMetrics(self._controller_statistics, self._cache_statistics)

    # ---- state kept across cycles -------------------------------------------------------
    def controllers_for(self, config: Config) -> ControllerRegistry:
        """One registry for the service's life, so a cap learned from a 429 in one cycle
        paces the next; rebuilt only if the rate share changes."""
        share = self.options.rate_share or config.global_.rate_share
        if self._controllers is None or self._controllers[0] != share:
            self._controllers = (share, ControllerRegistry(rate_share=share))
        return self._controllers[1]

    def cache_for(self, config: Config) -> TransferCache:
        """The transfer cache in memory, loaded from its file once (and again if the config
        moves ``cache_dir``); each cycle still saves it."""
        cache_dir = config.global_.resolved_cache_dir()
        if self._cache is None or self._cache[0] != str(cache_dir):
            loaded = CacheFile(cache_dir, ttl=config.global_.cache_ttl).load(self.wall())
            self._cache = (str(cache_dir), loaded)
        return self._cache[1]

    def _controller_statistics(self) -> list[ControllerStatistics]:
        return [] if self._controllers is None else list(self._controllers[1].statistics())

    def _cache_statistics(self) -> CacheStatistics | None:
        return None if self._cache is None else self._cache[1].statistics()

    # ---- one cycle ---------------------------------------------------------------------
    async def reload(self) -> Config:
        """The config file again; on a problem, one line (``FILE:LINE: ...``) and the last
        good config."""
        try:
            loaded = await self.loader(self.options.config_path)
        except ConfigError as exc:
            first = redact(str(exc).splitlines()[0] if str(exc) else "invalid config")
            if first != self.state.config_error:
                log.error("config invalid, keeping the last good one: %s", first,
                          extra={"event": "config_invalid", "fields": {"error": first}})
            self.state.config_error = first
            return self.config
        if self.state.config_error:
            log.warning("config valid again: %s", self.options.config_path,
                        extra={"event": "config_valid", "fields": {"file": self.options.config_path}})
        self.state.config_error = ""
        for warning in loaded.warnings:
            log.warning("%s", warning, extra={"event": "config_warning"})
        self.config = loaded.config
        return self.config

    def _on_tick(self, engine: SyncEngine) -> None:
        """Liveness: the cycle progressed if an image finished or a request was answered."""
        endpoints = {id(e): e for e in (*engine.ctx.sources.values(), *engine.ctx.targets.values())}
        sent = sum(sum(e.request_counts().values()) for e in endpoints.values())
        progress = (len(engine.report.results), sent)
        if progress != self._progress:
            self._progress = progress
            self.state.progressed(trio.current_time())

    async def run_cycle(self) -> CycleOutcome:
        config = await self.reload()
        self._interrupt = RunInterrupt()
        if self.stop_signal is not None:  # a signal came while the config was read
            self._interrupt.deliver(self.stop_signal, self.options.drain_timeout)
        options = RunOptions(
            drain_timeout=self.options.drain_timeout,
            rate_share=self.options.rate_share,
            on_tick=self._on_tick,
            on_blob=self.metrics.record_blob,
            timeout=self.options.timeout,
            controllers=self.controllers_for(config),
            cache=self.cache_for(config),
            interrupt=self._interrupt,
        )
        try:
            outcome = classify(await self.runner(config, options))
        except Exception as exc:  # the environment (disk full, no DNS): the next cycle retries
            outcome = failed_outcome(exc)
        finally:
            self._interrupt = None
        return outcome

    def record(self, outcome: CycleOutcome, started: float, started_wall: float) -> float:
        """Health, metrics, heartbeat and logs of a finished cycle; the next start (wall)."""
        now, wall = trio.current_time(), self.wall()
        seconds = now - started
        self.state.cycle_finished(now, fatal=outcome.fatal if outcome.outcome == "failed" else "")
        self.exit_code = outcome.exit_code
        if outcome.report is not None:
            self.metrics.record_report(outcome.report, seconds)
            self.on_report(outcome.report)
        self.metrics.record_cycle(outcome.outcome, seconds, wall)
        failures = self.state.consecutive_failures
        start = next_cycle_at(self.options.schedule, self.options.backoff, wall, failures,
                              self._random.random())
        period = self.options.schedule.period(wall)
        if outcome.outcome == "failed":
            log.error("cycle %d failed (%d in a row): %s; next cycle in %.1fs", self.state.cycles,
                      failures, outcome.fatal, start - wall, extra={"event": "cycle_failed", "fields": {
                          "cycle": self.state.cycles, "consecutive_failures": failures,
                          "error": outcome.fatal, "duration": round(seconds, 3),
                          "next_in": round(start - wall, 3)}})
        self.heartbeat.add(outcome, seconds, started_wall, period)
        line = self.heartbeat.due(wall)
        if line is not None:
            log.info("%s", line.text, extra={"event": "heartbeat", "fields": line.fields})
        return start

    # ---- the loop ----------------------------------------------------------------------
    def deliver_signal(self, name: str) -> None:
        if name == "SIGHUP":
            log.warning("SIGHUP: reloading the config and starting a cycle now",
                        extra={"event": "sighup"})
            self._sleep.cancel()
            return
        self.stop_signal = name
        self.state.draining = True
        if self._interrupt is not None:
            self._interrupt.deliver(name, self.options.drain_timeout)
        else:
            self._sleep.cancel()

    async def watch_signals(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                self.deliver_signal(signal.Signals(signum).name)

    async def run(self) -> int:
        """Cycles until a signal (or ``max_runs``); the process's exit code."""
        runs = 0
        while True:
            started, started_wall = trio.current_time(), self.wall()
            self.state.cycle_started(started)
            self.state.next_start = None
            outcome = await self.run_cycle()
            runs += 1
            start_wall = self.record(outcome, started, started_wall)
            if self.stop_signal is not None:
                return self._stopped_in_cycle(outcome)
            if self.options.max_runs and runs >= self.options.max_runs:
                return self.exit_code
            delay = max(0.0, start_wall - self.wall())
            self.state.next_start = trio.current_time() + delay
            self._sleep = trio.CancelScope()
            with self._sleep:
                await trio.sleep(delay)
            if self.stop_signal is not None:
                print("ocync: interrupted between runs: nothing left undone", file=sys.stderr)
                return self.exit_code

    def _stopped_in_cycle(self, outcome: CycleOutcome) -> int:
        report = outcome.report
        if report is not None and report.interrupted and report.undone:
            print(f"ocync: interrupted: {report.undone} left undone", file=sys.stderr)
        else:
            print("ocync: interrupted: nothing left undone", file=sys.stderr)
        if self.stop_signal == "SIGTERM" and self.options.sigterm_exits_0:
            return 0
        return outcome.exit_code


__all__ = ["CycleOutcome", "WatchOptions", "WatchService", "classify", "failed_outcome"]
