"""The discovery stage of a sync run: mappings -> tags (bounded) -> WorkItems -> channel.

Pattern mappings are expanded to their catalog's repositories as those are listed; each tag
is examined under one limiter shared by every mapping. Tags already in sync become skipped
results here (with any new referrers copied, ``artifacts.refresh``), failed tags failed
results; the rest are handed to execution over the bounded channel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import trio

from ocync.engine.digestpins import known_pin, pin_spec
from ocync.engine.discovery import (
    MappingDiscovery,
    MappingSpec,
    TagOutcome,
    TargetRepo,
    WorkItem,
    select_tags,
)
from ocync.engine.endpoints import SourceEndpoint
from ocync.engine.namespaces import NamespaceListing, TargetClaims, expand_namespace
from ocync.engine.nursery import run_all
from ocync.engine.plan import mount_group
from ocync.engine.pullplan import ImagePulls, image_pulls
from ocync.engine.referrers import refresh_referrers
from ocync.engine.report import BlobCounts, ImageResult, ImageStatus, RunReport, redact
from ocync.engine.runstate import RunState
from ocync.engine.stagestate import EngineOptions, RunCounters
from ocync.engine.tagdiscovery import discover_tag
from ocync.errors import OcyncError, Unauthorized

WorkSend = trio.MemorySendChannel[WorkItem] | None


def skipped_result(
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


class DiscoveryStage:
    """Discovers every mapping of a run; what it found stays in ``discoveries`` and
    ``namespaces`` (the dry-run plan, ownership records and pruning read them)."""

    def __init__(
        self,
        mappings: tuple[MappingSpec, ...],
        ctx: RunState,
        options: EngineOptions,
        report: RunReport,
        counters: RunCounters,
        record: Callable[[ImageResult], None],
    ) -> None:
        self.mappings = mappings
        self.ctx = ctx
        self.options = options
        self.report = report
        self.counters = counters
        self.record = record
        self.discoveries: list[MappingDiscovery] = []
        self.namespaces: list[NamespaceListing] = []
        self.expanded_from: dict[int, int] = {}  # id(concrete mapping) -> its pattern's index
        hosts = {name: ep.host for name, ep in (*ctx.sources.items(), *ctx.targets.items())}
        self._claims = TargetClaims((m for m in mappings if m.source_pattern is None), hosts)

    async def discover_all(self, send: WorkSend) -> None:
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
        self, mapping: MappingSpec, send: WorkSend, limiter: trio.CapacityLimiter
    ) -> None:
        """A pattern mapping: its catalog's repositories, discovered as they are listed."""
        listing = NamespaceListing(mapping.name, str(mapping.source_pattern))
        self.namespaces.append(listing)
        position = self.mappings.index(mapping)

        async def discover(concrete: MappingSpec) -> None:
            self.expanded_from[id(concrete)] = position
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
        self, mapping: MappingSpec, send: WorkSend, limiter: trio.CapacityLimiter
    ) -> None:
        found = MappingDiscovery(mapping)
        self.discoveries.append(found)
        referrer_tags = await self._list_tags(found, limiter)
        if found.selection is None or found.error:
            return
        work = [(tag, mapping) for tag in found.selection.tags]
        work += [(d, pin_spec(mapping, d)) for d in mapping.digests]
        self.counters.unexamined += len(work)
        source = self.ctx.sources[mapping.source]
        tag_task = functools.partial(self._examine_tag, found, source, referrer_tags, send, limiter)
        # Tags are admitted in the selection's order, then the digest pins (trio may run tasks
        # started together in either order, so the slot is taken here, not in the task):
        # sequence numbers, and the pulls a source's quota hands out (ocync.engine.pullplan),
        # follow that order.
        async with trio.open_nursery() as nursery:
            for tag, spec in work:
                holder = object()
                await limiter.acquire_on_behalf_of(holder)
                self.counters.seq += 1
                seq = self.counters.seq
                nursery.start_soon(tag_task, spec, tag, seq, image_pulls(source, seq), holder)

    async def _list_tags(
        self, found: MappingDiscovery, limiter: trio.CapacityLimiter
    ) -> frozenset[str] | None:
        """The mapping's tags and their selection; a listing that fails, or a selection below
        ``min_tags``, is the mapping's error (``found.error``)."""
        mapping = found.mapping
        try:
            async with limiter:
                found.listed, found.selection, referrer_tags = await select_tags(
                    mapping, self.ctx.sources[mapping.source]
                )
        except OcyncError as exc:
            found.error = f"mapping {mapping.name}: {redact(str(exc))}"
            self.report.add_error(found.error, auth_failure=isinstance(exc, Unauthorized))
            return None
        message = found.selection.min_tags_message()
        if message is not None:
            found.error = f"mapping {mapping.name}: {message}"
            self.report.add_error(found.error)
        return referrer_tags

    async def _examine_tag(
        self,
        found: MappingDiscovery,
        source: SourceEndpoint,
        referrer_tags: frozenset[str] | None,
        send: WorkSend,
        limiter: trio.CapacityLimiter,
        mapping: MappingSpec,
        tag: str,
        seq: int,
        pulls: ImagePulls | None,
        holder: object,
    ) -> None:
        """One tag (or digest pin): what its targets need, then skipped or failed results,
        or a WorkItem handed to execution. Its limiter slot is released once examined; a tag
        cut off (an interrupt) stays counted as not examined."""
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
        self._record_outcome(mapping, tag, outcome, refreshed)
        if outcome.error is None and outcome.item is not None:
            await self._hand_over(tag, outcome.item, send)
        self.counters.unexamined -= 1

    def _record_outcome(
        self,
        mapping: MappingSpec,
        tag: str,
        outcome: TagOutcome,
        refreshed: dict[TargetRepo, BlobCounts | OcyncError],
    ) -> None:
        """Results of a tag that needs no transfer: targets skipped, or every target failed."""
        for target, reason in outcome.skipped:
            self.record(skipped_result(mapping, tag, outcome.digest, target, reason, refreshed))
        if outcome.error is not None:
            for target in mapping.targets:
                self.record(
                    ImageResult.failed(
                        mapping.name,
                        mapping.source_label(tag),
                        target.label(mapping.push_tag(tag)),
                        outcome.error,
                    )
                )

    async def _hand_over(self, tag: str, item: WorkItem, send: WorkSend) -> None:
        """Count the item's blobs as needed by its targets' mount groups, then send it to
        execution (nothing is sent on a dry run)."""
        mapping = item.mapping
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
            self.counters.expected += len(item.targets)

    def _note_source_holds(self, item: WorkItem) -> None:
        """``ocync copy`` within one registry: the source repository holds every blob of the
        image it serves, so a target repository at that registry may mount them from it
        (the cache is ``ocync copy``'s own, in memory)."""
        host = self.ctx.sources[item.mapping.source].host
        if any(self.ctx.targets[t.registry].host == host for t in item.targets):
            for digest in item.tree.blob_digests():
                self.ctx.cache.record_blob(host, item.mapping.source_repo, digest)

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


__all__ = ["DiscoveryStage", "skipped_result"]
