"""The nursery tree of a sync run: discovery and execution overlap.

    run()
    +-- signal watcher            SIGINT/SIGTERM -> stop discovery, drain within the deadline
    +-- work nursery
        +-- discovery             mappings -> tags (bounded) -> WorkItems -> memory channel
        |                         (+ new referrers of unchanged tags, artifacts.refresh)
        +-- dispatcher            leaders first, at most max_concurrent_transfers in flight
            +-- item              one WorkItem, all its targets at once
                +-- transfer      blobs, children, tag manifest, referrers (transfer.py)

The channel is bounded, so discovery never runs far ahead of execution. The dispatcher
buffers what is ready and starts the item with the highest leader score (shared blobs it
covers, counted over everything discovered so far) so that followers can mount.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from ocync.engine.cache import TransferCache
from ocync.engine.digestpins import known_pin, pin_spec
from ocync.engine.discovery import (
    MappingDiscovery,
    MappingSpec,
    TagOutcome,
    TargetRepo,
    WorkItem,
    discover_tag,
    select_tags,
)
from ocync.engine.endpoints import Endpoint, SourceEndpoint, TargetEndpoint
from ocync.engine.namespaces import NamespaceListing, TargetClaims, expand_namespace
from ocync.engine.nursery import run_all
from ocync.engine.plan import MountScope, mount_group
from ocync.engine.prune import PruneRun, record_ownership
from ocync.engine.pullplan import ImagePulls, image_pulls
from ocync.engine.referrers import find_referrers, refresh_referrers
from ocync.engine.report import BlobCounts, ImageResult, ImageStatus, RunReport, redact
from ocync.engine.runstate import RunState
from ocync.engine.sharding import Shard
from ocync.engine.staging import BlobStage
from ocync.engine.transfer import (
    TransferProgress,
    failed_result,
    interrupted_result,
    transfer_image,
)
from ocync.errors import OcyncError, Unauthorized
from ocync.ratelimit.bucket import parse_rate

log = logging.getLogger("ocync.engine.pipeline")


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


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Concurrency bounds of the engine. Request rates are not set here: every request
    still waits for its principal's controller, which is what keeps a registry's cap."""

    max_concurrent_transfers: int = 8  # config global.max_concurrent_transfers's default
    # Tags examined at once: each costs 1-3 small requests; twice the transfers keeps the
    # channel full while images upload.
    discovery_concurrency: int = 16
    # Blobs of one image placed at once: images have 3-10 layers typically, and 8 images x 6
    # keeps the controller's window (<= 50 by default) busy without queueing far behind it.
    blob_concurrency: int = 6
    channel_size: int = 32  # work items discovered ahead of execution (bounded memory)
    drain_timeout: float = 25.0  # default drain deadline on SIGINT/SIGTERM: inside Kubernetes' 30 s grace period
    dry_run: bool = False
    handle_signals: bool = False
    force_prune: bool = False  # --force-prune: lifts prune.max_fraction (no other rail)
    # --shard I/N for the repositories pattern mappings expand to (literal mappings are
    # selected before the engine starts, with the same key).
    shard: Shard | None = None


class SyncEngine:
    """One run over a set of mappings. ``await run()`` returns the :class:`RunReport`."""

    def __init__(
        self,
        mappings: Sequence[MappingSpec],
        sources: dict[str, SourceEndpoint],
        targets: dict[str, TargetEndpoint],
        cache: TransferCache,
        options: EngineOptions = EngineOptions(),
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
        # Targets no single mount can reach all of (several registries, or several GHCR
        # namespaces): a blob may be wanted by a group discovered only after its first upload,
        # so every blob is staged (pulled once into cache_dir, pushed from there).
        groups = {
            mount_group(targets[t.registry].mount_scope, targets[t.registry].host, t.repo)
            for m in self.mappings
            for t in m.targets
        }
        # A pattern's `to: "*"` spreads its repositories over namespaces not known yet.
        spread = any(
            m.source_pattern and t.repo.startswith("*") and targets[t.registry].mount_scope is not MountScope.ANY
            for m in self.mappings
            for t in m.targets
        )
        self.ctx.stage_all = len(groups) > 1 or spread
        self.report = RunReport(dry_run=options.dry_run)
        self.discoveries: list[MappingDiscovery] = []
        self.on_result = on_result
        self._stopping = False
        self._discovery_scope = trio.CancelScope()
        self._exec_scope = trio.CancelScope()
        self._prune_scope = trio.CancelScope()
        self._expected = 0  # (item, target) pairs handed to execution
        self._finished = 0
        self._unexamined = 0  # selected tags whose discovery has not finished
        self._in_flight = 0
        self._seq = 0
        hosts = {name: ep.host for name, ep in (*sources.items(), *targets.items())}
        self._claims = TargetClaims((m for m in self.mappings if m.source_pattern is None), hosts)
        self.namespaces: list[NamespaceListing] = []
        self._expanded_from: dict[int, int] = {}  # id(concrete mapping) -> its pattern's index
        self._bytes = 0  # bytes_transferred of the results recorded so far

    # ---- control -----------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop discovery, start nothing new, let in-flight work drain until the deadline."""
        if self._stopping:
            # A second signal: stop now.
            self._exec_scope.cancel()
            self._prune_scope.cancel()
            return
        self._stopping = True
        self.report.interrupted = True
        self._discovery_scope.cancel()
        self._exec_scope.deadline = min(
            self._exec_scope.deadline, trio.current_time() + self.options.drain_timeout
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
        self._bytes += result.bytes_transferred  # progress() is read ~4x a second: no re-summing
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
                        await self._discover_all(None)
                else:
                    send, recv = trio.open_memory_channel[WorkItem](self.options.channel_size)
                    async with trio.open_nursery() as work:
                        work.start_soon(self._dispatch, recv)
                        async with send:
                            with self._discovery_scope:
                                await self._discover_all(send)
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
        if self._stopping:
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
            "images_not_started": max(self._expected - self._finished - interrupted, 0),
            "tags_not_examined": self._unexamined,
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
        order = {id(m): i for i, m in enumerate(self.mappings)} | self._expanded_from
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

    # ---- discovery ---------------------------------------------------------------------
    async def _discover_all(self, send: trio.MemorySendChannel[WorkItem] | None) -> None:
        limiter = trio.CapacityLimiter(self.options.discovery_concurrency)
        # Mappings are admitted as earlier ones finish (twice the limiter's slots keep it busy
        # while admitted mappings wait on the channel): a task per mapping held at once
        # dominated peak memory at 10,000 mappings (stress/scale.py).
        await run_all(
            (
                functools.partial(
                    self._discover_namespace if m.source_pattern else self._discover_mapping,
                    m, send, limiter,
                )
                for m in self.mappings
            ),
            limit=2 * self.options.discovery_concurrency,
        )

    async def _discover_namespace(
        self,
        mapping: MappingSpec,
        send: trio.MemorySendChannel[WorkItem] | None,
        limiter: trio.CapacityLimiter,
    ) -> None:
        """A pattern mapping: its catalog's repositories, discovered as they are listed."""
        listing = NamespaceListing(mapping.name, str(mapping.source_pattern))
        self.namespaces.append(listing)
        position = self.mappings.index(mapping)

        async def discover(concrete: MappingSpec) -> None:
            self._expanded_from[id(concrete)] = position
            await self._discover_mapping(concrete, send, limiter)

        await expand_namespace(
            mapping,
            self.ctx.sources[mapping.source],
            self._claims,
            discover,
            shard=self.options.shard,
            concurrency=self.options.discovery_concurrency,
            listing=listing,
            warn=self.report.warnings.append,
            keep_names=self.options.dry_run,
        )
        if listing.error:
            self.report.add_error(redact(listing.error), auth_failure=listing.auth_failure)

    async def _discover_mapping(
        self,
        mapping: MappingSpec,
        send: trio.MemorySendChannel[WorkItem] | None,
        limiter: trio.CapacityLimiter,
    ) -> None:
        found = MappingDiscovery(mapping)
        self.discoveries.append(found)
        source = self.ctx.sources[mapping.source]
        try:
            async with limiter:
                found.listed, found.selection, referrer_tags = await select_tags(mapping, source)
        except OcyncError as exc:
            found.error = f"mapping {mapping.name}: {redact(str(exc))}"
            self.report.add_error(found.error, auth_failure=isinstance(exc, Unauthorized))
            return
        message = found.selection.min_tags_message()
        if message is not None:
            found.error = f"mapping {mapping.name}: {message}"
            self.report.add_error(found.error)
            return

        async def one(
            tag: str, seq: int, pulls: ImagePulls | None, holder: object, mapping: MappingSpec
        ) -> None:
            try:
                pinned = None
                if mapping.one_image is not None and mapping.one_image.expected_digest == tag:
                    pinned = known_pin(mapping, tag, self.ctx.targets, self.ctx.cache)
                outcome = pinned or await discover_tag(
                    mapping,
                    tag,
                    seq,
                    source,
                    dict(self.ctx.targets),
                    self.ctx.cache,
                    referrer_tags,
                    push_scope=not self.options.dry_run,
                    pulls=pulls,
                )
                refreshed = await self._refresh_referrers(mapping, outcome, referrer_tags)
            finally:
                limiter.release_on_behalf_of(holder)
            if self.options.dry_run or mapping.one_image is not None:
                # kept for the dry-run report (and ocync copy's one image) only: bounded memory
                found.outcomes.append(outcome)
            for target, reason in outcome.skipped:
                self._record(self._skipped_result(mapping, tag, outcome.digest, target, reason, refreshed))
            if outcome.error is not None:
                for target in mapping.targets:
                    self._record(
                        ImageResult.failed(
                            mapping.name,
                            mapping.source_label(tag),
                            target.label(mapping.push_tag(tag)),
                            outcome.error,
                        )
                    )
                return
            item = outcome.item
            if item is None:
                return
            self.report.warnings.extend(f"{mapping.source_label(tag)}: {w}" for w in item.warnings)
            if mapping.one_image is not None:
                self._note_source_holds(item)
            digests = item.tree.blob_digests()
            for target in item.targets:
                self.ctx.refcounts.add(digests)
                endpoint = self.ctx.targets[target.registry]
                group = mount_group(endpoint.mount_scope, endpoint.host, target.repo)
                for digest in digests:
                    self.ctx.note_need(digest, group)
            if send is not None:
                await send.send(item)  # cancelled while waiting: not handed over
                self._expected += len(item.targets)

        async def examine(
            tag: str, seq: int, pulls: ImagePulls | None, holder: object, spec: MappingSpec
        ) -> None:
            await one(tag, seq, pulls, holder, spec)
            self._unexamined -= 1

        work = [(tag, mapping) for tag in found.selection.tags]
        work += [(d, pin_spec(mapping, d)) for d in mapping.digests]
        self._unexamined += len(work)
        # Tags are admitted in the selection's order, then the digest pins (trio may run tasks
        # started together in either order, so the slot is taken here, not in the task):
        # sequence numbers, and the pulls a source's quota hands out (ocync.engine.pullplan),
        # follow that order.
        async with trio.open_nursery() as nursery:
            for tag, spec in work:
                holder = object()
                await limiter.acquire_on_behalf_of(holder)
                self._seq += 1
                nursery.start_soon(
                    examine, tag, self._seq, image_pulls(source, self._seq), holder, spec
                )

    def _note_source_holds(self, item: WorkItem) -> None:
        """``ocync copy`` within one registry: the source repository holds every blob of the
        image it serves, so a target repository at that registry may mount them from it
        (the cache is ``ocync copy``'s own, in memory)."""
        host = self.ctx.sources[item.mapping.source].host
        if any(self.ctx.targets[t.registry].host == host for t in item.targets):
            for digest in item.tree.blob_digests():
                self.ctx.cache.record_blob(host, item.mapping.source_repo, digest)

    @staticmethod
    def _skipped_result(
        mapping: MappingSpec,
        tag: str,
        digest: str,
        target: TargetRepo,
        reason: str,
        refreshed: dict[TargetRepo, BlobCounts | OcyncError],
    ) -> ImageResult:
        """A target that already has the tag, and what refreshing its referrers did."""
        source, label = mapping.source_label(tag), target.label(mapping.push_tag(tag))
        done = refreshed.get(target, BlobCounts())
        if isinstance(done, OcyncError):
            return ImageResult.failed(
                mapping.name, source, label, done, digest=digest, context="referrers: "
            )
        if not done.referrers:
            return ImageResult.synced(
                mapping.name, source, label, digest, done, status=ImageStatus.SKIPPED, reason=reason
            )
        # new referrers of an unchanged image were written: worth a line
        return ImageResult.synced(
            mapping.name, source, label, digest, done,
            reason=f"{reason}; {done.referrers} new referrer(s) copied",
        )

    async def _refresh_referrers(
        self, mapping: MappingSpec, outcome: TagOutcome, referrer_tags: frozenset[str] | None
    ) -> dict[TargetRepo, BlobCounts | OcyncError]:
        """Referrers added at the source to a tag that is already in sync (its targets
        skipped as unchanged) are copied now: ``artifacts.refresh: cached`` for the targets
        verified this run (a stamp missing or older than ``cache_ttl``, ``verify: always``),
        so new referrers arrive within ``cache_ttl``; ``always`` for every target, every run."""
        dests = [
            t
            for t, reason in outcome.skipped
            if reason == "unchanged"
            and (t not in outcome.trusted or mapping.artifacts.refresh_trusted)
        ]
        if not dests or not mapping.artifacts.refresh_unchanged or self.options.dry_run:
            return {}
        try:
            copied = await refresh_referrers(
                self.ctx, mapping, outcome.digest, dests, referrer_tags
            )
        except OcyncError as exc:
            return {t: exc for t in dests}
        return dict(copied)

    # ---- execution ---------------------------------------------------------------------
    async def _dispatch(self, recv: trio.MemoryReceiveChannel[WorkItem]) -> None:
        slots = trio.Semaphore(self.options.max_concurrent_transfers)
        ready: list[WorkItem] = []
        closed = False
        with self._exec_scope:
            async with recv, trio.open_nursery() as nursery:
                while not self._stopping:
                    if not ready:
                        if closed:
                            break
                        try:
                            ready.append(await recv.receive())
                        except trio.EndOfChannel:
                            break
                    await slots.acquire()
                    while len(ready) < self.options.channel_size and not closed:
                        try:
                            ready.append(recv.receive_nowait())
                        except trio.WouldBlock:
                            break
                        except trio.EndOfChannel:
                            closed = True
                    if self._stopping:
                        slots.release()
                        break
                    best = max(
                        ready,
                        key=lambda w: (self.ctx.refcounts.leader_score(w.tree.blob_digests()), -w.seq),
                    )
                    ready.remove(best)
                    nursery.start_soon(self._run_item, best, slots)

    async def _run_item(self, item: WorkItem, slots: trio.Semaphore) -> None:
        self._in_flight += 1
        try:
            try:
                referrers = await find_referrers(item, self.ctx.sources[item.mapping.source])
            except OcyncError as exc:
                # e.g. require_artifacts without any: the image fails before anything is written
                for dest in item.targets:
                    self._finished += 1
                    self._record(failed_result(item, dest, exc))
                return

            async def to(dest_index: int) -> None:
                dest = item.targets[dest_index]
                progress = TransferProgress()
                start = trio.current_time()
                result: ImageResult | None = None
                try:
                    result = await transfer_image(self.ctx, item, dest, referrers, progress)
                finally:
                    if result is None:  # cut off by the drain deadline: report how far it got
                        seconds = trio.current_time() - start
                        self._record(interrupted_result(item, dest, progress, seconds))
                self._finished += 1
                self._record(result)

            await run_all(functools.partial(to, i) for i in range(len(item.targets)))
        finally:
            self._in_flight -= 1
            slots.release()

    def progress(self) -> EngineProgress:
        unique = {id(e): e for e in (*self.ctx.sources.values(), *self.ctx.targets.values())}
        loads = tuple(
            EndpointLoad(ep.name, sum(ep.request_counts().values()), _cap_per_minute(ep.statistics()))
            for ep in unique.values()
        )
        return EngineProgress(
            expected=self._expected,
            finished=self._finished,
            in_flight=self._in_flight,
            results=len(self.report.results),
            bytes_transferred=self._bytes,
            endpoints=loads,
        )

    def statistics(self) -> dict[str, object]:
        return {
            "expected": self._expected,
            "finished": self._finished,
            "in_flight": self._in_flight,
            "stopping": self._stopping,
            **self.ctx.statistics().to_dict(),
        }

    def __repr__(self) -> str:
        return (
            f"<SyncEngine mappings={len(self.mappings)} finished={self._finished}/"
            f"{self._expected} in_flight={self._in_flight} stopping={self._stopping}>"
        )


__all__ = ["EndpointLoad", "EngineOptions", "EngineProgress", "SyncEngine"]
