"""The nursery tree of a sync run: discovery and execution overlap.

    run()
    +-- signal watcher            SIGINT/SIGTERM -> stop discovery, drain within the deadline
    +-- work nursery
        +-- discovery             mappings -> tags (bounded) -> WorkItems -> memory channel
        |                         (+ new referrers of unchanged tags, artifacts.refresh)
        +-- dispatcher            leaders first, at most max_concurrent_transfers in flight
            +-- item              one WorkItem, all its targets at once
                +-- transfer      blobs, children, tag manifest, referrers (transfer.py)

The channel is bounded, so discovery never runs far ahead of execution. The discovery
stage is discoverystage.py, the dispatcher and its items executionstage.py; SyncEngine
coordinates them: signals, the drain deadline, pruning, the report's counts.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, WorkItem
from ocync.engine.discoverystage import DiscoveryStage
from ocync.engine.endpoints import Endpoint, SourceEndpoint, TargetEndpoint
from ocync.engine.executionstage import ExecutionStage
from ocync.engine.plan import MountScope, mount_group
from ocync.engine.prune import PruneRun, record_ownership
from ocync.engine.report import ImageResult, ImageStatus, RunReport
from ocync.engine.runstate import RunState
from ocync.engine.stagestate import EngineOptions, RunCounters
from ocync.engine.staging import BlobStage
from ocync.errors import OcyncError
from ocync.ratelimit.bucket import parse_rate

log = logging.getLogger("ocync.engine.pipeline")

_DEFAULT_OPTIONS = EngineOptions()  # frozen: one shared default


@dataclass(frozen=True, slots=True)
class EndpointLoad:
    """Requests one endpoint sent so far, and its principal's cap per minute if known."""

    name: str
    requests: int
    cap_per_minute: float | None = None


@dataclass(frozen=True, slots=True)
class EngineProgress:
    """How far a run is (the CLI's live status reads this, nothing inside the engine)."""

    expected: int  # (image, target) pairs handed to execution so far
    finished: int
    in_flight: int
    results: int
    bytes_transferred: int
    endpoints: tuple[EndpointLoad, ...] = ()


def _cap_per_minute(stats: Mapping[str, object]) -> float | None:
    controller = stats.get("controller")
    cap = controller.get("cap") if isinstance(controller, dict) else None
    if not cap:
        return None
    try:
        rate = parse_rate(str(cap))  # the controller reports its cap as text
    except OcyncError:
        return None
    return rate.count / rate.period * 60


def _stages_every_blob(mappings: Sequence[MappingSpec], targets: Mapping[str, TargetEndpoint]) -> bool:
    """Targets no single mount can reach all of (several registries, or several GHCR
    namespaces): a blob may be wanted by a group discovered only after its first upload,
    so every blob is staged (pulled once into cache_dir, pushed from there)."""
    groups = {
        mount_group(targets[t.registry].mount_scope, targets[t.registry].host, t.repo)
        for m in mappings
        for t in m.targets
    }
    # A pattern's `to: "*"` spreads its repositories over namespaces not known yet.
    spread = any(
        m.source_pattern and t.repo.startswith("*") and targets[t.registry].mount_scope is not MountScope.ANY
        for m in mappings
        for t in m.targets
    )
    return len(groups) > 1 or spread


class SyncEngine:
    """One run over a set of mappings. ``await run()`` returns the :class:`RunReport`."""

    def __init__(
        self,
        mappings: Sequence[MappingSpec],
        sources: dict[str, SourceEndpoint],
        targets: dict[str, TargetEndpoint],
        cache: TransferCache,
        options: EngineOptions = _DEFAULT_OPTIONS,
        *,
        stage: BlobStage | None = None,
        on_result: Callable[[ImageResult], None] | None = None,
        on_blob: Callable[[int, float], None] | None = None,
    ) -> None:
        self.mappings = tuple(mappings)
        self.options = options
        self.ctx = RunState(
            sources=sources,
            targets=targets,
            cache=cache,
            stage=stage,
            blob_concurrency=options.blob_concurrency,
            on_blob=on_blob,
        )
        self.ctx.stage_all = _stages_every_blob(self.mappings, targets)
        self.report = RunReport(dry_run=options.dry_run)
        self.on_result = on_result
        self.counters = RunCounters()
        self._discovery_scope = trio.CancelScope()
        self._prune_scope = trio.CancelScope()
        self._discovery = DiscoveryStage(
            self.mappings, self.ctx, options, self.report, self.counters, self._record
        )
        self._execution = ExecutionStage(self.ctx, options, self.counters, self._record)
        # what discovery found (the dry-run plan, ownership, pruning and ocync copy read them)
        self.discoveries = self._discovery.discoveries
        self.namespaces = self._discovery.namespaces

    # ---- control -----------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop discovery, start nothing new, let in-flight work drain until the deadline."""
        if self.counters.stopping:
            # A second signal: stop now.
            self._execution.scope.cancel()
            self._prune_scope.cancel()
            return
        self.counters.stopping = True
        self.report.interrupted = True
        self._discovery_scope.cancel()
        self._execution.scope.deadline = min(
            self._execution.scope.deadline, trio.current_time() + self.options.drain_timeout
        )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.warning(
                    "%s: stopping discovery, draining in-flight transfers (up to %.0fs)",
                    signal.Signals(signum).name,
                    self.options.drain_timeout,
                )
                self.request_stop()

    # ---- results -----------------------------------------------------------------------
    def _record(self, result: ImageResult) -> None:
        self.report.add(result)
        self.counters.bytes += result.bytes_transferred  # progress() is read ~4x a second: no re-summing
        if self.on_result is not None:
            self.on_result(result)

    # ---- run ---------------------------------------------------------------------------
    async def run(self) -> RunReport:
        start = trio.current_time()
        try:
            async with trio.open_nursery() as outer:
                if self.options.handle_signals:
                    outer.start_soon(self._watch_signals)
                if self.options.dry_run:
                    with self._discovery_scope:
                        await self._discovery.discover_all(None)
                else:
                    send, recv = trio.open_memory_channel[WorkItem](self.options.channel_size)
                    async with trio.open_nursery() as work:
                        work.start_soon(self._execution.dispatch, recv)
                        async with send:
                            with self._discovery_scope:
                                await self._discovery.discover_all(send)
                await self._prune()
                outer.cancel_scope.cancel()
        finally:
            self.report.elapsed = trio.current_time() - start
            self._count_undone()
            self._collect_statistics()
        return self.report

    async def _prune(self) -> None:
        """After every transfer: record which target tags are ocync's, then prune (never
        after an interrupt: what the run saw is incomplete)."""
        record_ownership(self.ctx, self.discoveries)
        if not any(m.prune is not None and m.prune.enabled for m in self.mappings):
            return
        if self.counters.stopping:
            self.report.warnings.append("interrupted: nothing pruned")
            return
        run = PruneRun(self.ctx, self.report, force=self.options.force_prune, dry_run=self.options.dry_run)
        with self._prune_scope:  # a second signal cuts pruning off too
            await run.prune_all(self.discoveries)

    def _count_undone(self) -> None:
        """What an interrupt left undone: every image handed to execution and not finished
        (cut off in flight, or never started), every selected tag not fully examined, and
        every mapping whose tags were never listed (how many tags it has is unknown: one)."""
        interrupted = self.report.count(ImageStatus.INTERRUPTED)
        literal = {id(m) for m in self.mappings}
        listed = sum(
            1 for d in self.discoveries if id(d.mapping) in literal and (d.selection is not None or d.error)
        ) + sum(1 for n in self.namespaces if n.complete or n.error)
        detail = {
            "images_interrupted": interrupted,
            "images_not_started": max(self.counters.expected - self.counters.finished - interrupted, 0),
            "tags_not_examined": self.counters.unexamined,
            "mappings_not_listed": len(self.mappings) - listed,
        }
        self.report.undone_detail = detail
        self.report.undone = sum(detail.values())

    def _collect_statistics(self) -> None:
        endpoints: dict[int, Endpoint] = {}
        for ep in (*self.ctx.sources.values(), *self.ctx.targets.values()):
            endpoints[id(ep)] = ep
        by_kind: Counter[str] = Counter()
        throttled = 0
        controllers: dict[str, object] = {}
        for ep in endpoints.values():
            by_kind.update(ep.request_counts())
            throttled += ep.throttled_count()
            stats = dict(ep.statistics())
            if stats:
                controllers[ep.name] = stats
        self.report.requests_by_kind = dict(by_kind)
        self.report.requests = sum(by_kind.values())
        self.report.throttled = throttled
        self.report.controllers = controllers
        self.report.cache = self.ctx.cache.statistics().to_dict()
        # Mappings are discovered concurrently; the plan lists them in config order (the
        # repositories of a pattern at its place, by name).
        order = {id(m): i for i, m in enumerate(self.mappings)} | self._discovery.expanded_from
        discoveries = sorted(
            self.discoveries, key=lambda d: (order.get(id(d.mapping), len(order)), d.mapping.name)
        )
        self.report.plan = {
            **self.ctx.statistics().to_dict(),
            "mappings": [d.to_dict() for d in discoveries] if self.options.dry_run else [],
        }
        if self.namespaces:
            names = [m.name for m in self.mappings]
            listings = sorted(self.namespaces, key=lambda n: names.index(n.mapping))
            self.report.plan["namespaces"] = [n.to_dict() for n in listings]

    def progress(self) -> EngineProgress:
        unique = {id(e): e for e in (*self.ctx.sources.values(), *self.ctx.targets.values())}
        loads = tuple(
            EndpointLoad(ep.name, sum(ep.request_counts().values()), _cap_per_minute(ep.statistics()))
            for ep in unique.values()
        )
        return EngineProgress(
            expected=self.counters.expected,
            finished=self.counters.finished,
            in_flight=self.counters.in_flight,
            results=len(self.report.results),
            bytes_transferred=self.counters.bytes,
            endpoints=loads,
        )

    def statistics(self) -> dict[str, object]:
        return {
            "expected": self.counters.expected,
            "finished": self.counters.finished,
            "in_flight": self.counters.in_flight,
            "stopping": self.counters.stopping,
            **self.ctx.statistics().to_dict(),
        }

    def __repr__(self) -> str:
        return (
            f"<SyncEngine mappings={len(self.mappings)} finished={self.counters.finished}/"
            f"{self.counters.expected} in_flight={self.counters.in_flight} stopping={self.counters.stopping}>"
        )


__all__ = ["EndpointLoad", "EngineOptions", "EngineProgress", "SyncEngine"]
