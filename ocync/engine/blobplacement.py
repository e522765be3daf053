"""Making one image's blobs present in one target repository, the cheapest way the plan
allows: skip on a cache hit, cross-repository mount, self-mount probe, HEAD; upload only
what is missing. Within a run a blob is pulled from the source at most once per target
registry: a second image needing a blob already in flight there waits for it and then
mounts or skips (OCI distribution-spec "Mounting a blob from another repository": 201
mounted, 202 not fulfilled with an upload session handed back). A tree's manifests follow
its blobs, children first: a tag never points at missing content (distribution-spec
"Pushing Manifests": the registry may reject unknown blobs, but not all do).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ocync.engine.discovery import ImageTree
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.nursery import run_all
from ocync.engine.plan import BlobActionKind, choose_blob_action
from ocync.engine.report import BlobCounts
from ocync.engine.runstate import RunState
from ocync.errors import OcyncError, RegistryError
from ocync.oci.manifest import Descriptor, Manifest
from ocync.ratelimit.backoff import backoff_delay
from ocync.registry.client import UploadSession

log = logging.getLogger("ocync.engine.blobplacement")


@dataclass(slots=True)
class BlobPlacement:
    """Blobs of one transfer: from ``source_repo`` at ``source`` into ``repo`` at ``target``.

    ``trust_cache``: False when rechecking after the target disagreed with the cache;
    ``stage_hint``: the image goes to several target registries (pull it once, into staging).
    """

    run: RunState
    target: TargetEndpoint
    repo: str
    source: SourceEndpoint
    source_repo: str
    counts: BlobCounts = field(default_factory=BlobCounts)
    trust_cache: bool = True
    stage_hint: bool = False

    async def ensure(self, desc: Descriptor) -> None:
        """Make ``desc`` present in the target repository."""
        run, target, digest = self.run, self.target, str(desc.digest)
        key = (target.host, digest)
        while True:
            if self.trust_cache and run.cache.has_blob(target.host, self.repo, digest):
                self.counts.skipped += 1
                run.actions["cache_skip"] += 1
                return
            if (target.host, self.repo, digest) in run.placed:
                # Already confirmed in this repository during this run: never place it again,
                # even when rechecking a stale cache. Placing a blob the repository already
                # holds rewrites its link, and distribution 2.8 (filesystem driver) rewrites it
                # in place, truncated then written: a manifest PUT verifying that blob at the
                # same moment reads an empty link and answers 400 "DIGEST_INVALID;
                # MANIFEST_BLOB_UNKNOWN" (observed with docker-registry 2.8.2: a same-repository
                # self-mount ~1 ms after a retried manifest PUT's 400; upstream later made
                # PutContent write a temporary file and rename it).
                self.counts.skipped += 1
                run.actions["placed_skip"] += 1
                return
            pending = run.inflight.get(key)
            if pending is None:
                break
            await pending.wait()  # another image is placing it: then mount or skip
        event = trio.Event()
        run.inflight[key] = event
        try:
            await self._place(desc)
        finally:
            del run.inflight[key]
            event.set()

    def _confirmed(self, digest: str) -> None:
        """The target answered that ``digest`` is in the repository (cache + run-scoped fact)."""
        self.run.cache.record_blob(self.target.host, self.repo, digest)
        self.run.placed.add((self.target.host, self.repo, digest))

    async def _place(self, desc: Descriptor) -> None:
        run, target, repo, digest = self.run, self.target, self.repo, str(desc.digest)
        action = choose_blob_action(
            repo,
            holders=run.cache.holders(target.host, digest) if self.trust_cache else [],
            committed=run.cache.committed(target.host),
            scope=target.mount_scope,
            self_probe=target.mount_probe_ok,
        )
        session: UploadSession | None = None
        run.actions[action.kind.value] += 1
        if action.kind is BlobActionKind.MOUNT:
            assert action.from_repo is not None
            outcome = await target.mount_blob(repo, desc, action.from_repo)
            if outcome.mounted:
                self._confirmed(digest)
                self.counts.mounted += 1
                return
            run.cache.invalidate_blob(target.host, action.from_repo, digest)
            session = outcome.session
        elif action.kind is BlobActionKind.PROBE:
            outcome = await target.mount_blob(repo, desc, repo)
            if outcome.mounted:
                self._confirmed(digest)
                self.counts.skipped += 1
                return
            session = outcome.session
        elif self.trust_cache and await repository_is_fresh(run, target, repo):
            # The repository did not exist when this run started and nothing we did not put
            # there can have appeared since: the HEAD could only answer 404.
            run.actions["fresh_upload"] += 1
        elif await target.head_blob(repo, desc):
            self._confirmed(digest)
            self.counts.skipped += 1
            return
        started = trio.current_time()
        await self._upload(desc, session)
        self._confirmed(digest)
        self.counts.transferred += 1
        self.counts.bytes += desc.size
        if self.run.on_blob is not None:
            self.run.on_blob(desc.size, trio.current_time() - started)

    async def _upload(self, desc: Descriptor, session: UploadSession | None) -> None:
        run, source, digest = self.run, self.source, str(desc.digest)
        if run.stage is not None and (self.stage_hint or run.needs_staging(digest)):

            async def download(path: Path) -> None:
                run.pulls[(source.host, digest)] += 1
                await source.download_blob(self.source_repo, desc, path)

            async with run.stage.use(desc, download) as path:
                if path is not None:
                    await self.target.upload_file(self.repo, desc, path, session)
                    return
        run.pulls[(source.host, digest)] += 1
        await self.target.copy_blob(source, self.source_repo, self.repo, desc, session)


async def repository_is_fresh(run: RunState, target: TargetEndpoint, repo: str) -> bool:
    """Whether ``repo`` did not exist at the target when first asked (one tag-list request
    per repository and run; repositories the cache knows as committed are never fresh)."""
    key = (target.host, repo)
    state = run.fresh.get(key)
    if isinstance(state, bool):
        return state  # the answer from before this run wrote into the repository
    if repo in run.cache.committed(target.host):
        run.fresh[key] = False
        return False
    if state is not None:
        await state.wait()
        return run.fresh.get(key) is True
    event = trio.Event()
    run.fresh[key] = event
    fresh = False
    try:
        fresh = not await target.repository_exists(repo)
    except OcyncError:
        fresh = False  # unknown: fall back to HEAD
    finally:
        run.fresh[key] = fresh
        event.set()
    return fresh


async def push_tree(placement: BlobPlacement, tree: ImageTree, tag: str | None) -> None:
    """Blobs (most-shared first), then children, then the root under ``tag`` (or digest)."""
    run, target, repo = placement.run, placement.target, placement.repo
    by_digest = {str(d.digest): d for d in tree.blobs()}
    ordered = run.refcounts.order(by_digest)
    if placement.trust_cache and not target.mount_probe_ok:
        # Ask "did the repository exist?" before this run writes anything into it.
        await repository_is_fresh(run, target, repo)
    await run_all(
        (functools.partial(placement.ensure, by_digest[d]) for d in ordered),
        limit=run.blob_concurrency,
    )
    children = {str(c.digest): c for c in tree.children}
    refused: list[OcyncError] = []

    async def put_child(digest: str, child: Manifest) -> None:
        # Each child PUT runs to its answer: a refusal does not cancel its siblings
        # mid-body (after a stale cache every child is refused at once, and a request
        # cancelled while sending leaves httpx's body generator half-run).
        try:
            await target.put_manifest(repo, digest, child)
        except OcyncError as exc:
            refused.append(exc)

    await run_all(functools.partial(put_child, d, c) for d, c in children.items())
    if refused:
        raise refused[0]
    await target.put_manifest(repo, tag or tree.digest, tree.root)
    # Pushed by digest: recorded under the digest itself (no tag has a ':'), so a digest pin
    # the cache knows costs no request on the next run (ocync.engine.digestpins).
    ref = tag or tree.digest
    run.cache.record_tag(target.host, repo, ref, tree.digest, source=tree.source_digest or None)


# Error codes a manifest PUT answers when something it references is not there
# (distribution-spec "Pushing Manifests"; distribution answers MANIFEST_BLOB_UNKNOWN).
_MISSING_CODES = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN"})
# Pushes of a tree after the target refused it for a missing blob: one recheck of every blob
# (the cache was stale), then up to two more that only resend the manifests, every blob having
# been confirmed in this run. The latter is for docker-registry 2.8's filesystem driver, which
# rewrites a repository's blob link in place (truncate, then write) whenever the blob is placed
# there again: a manifest PUT verifying that blob at the same moment reads an empty link and
# answers 400 MANIFEST_BLOB_UNKNOWN although the blob is there (seen about once in 20 storage
# wipes with the cache kept, under load).
STALE_CACHE_PUSHES = 3
_RESEND_BACKOFF = (0.2, 2.0)  # base, cap (s): the race window is a few milliseconds
_RNG = random.Random()


def blob_missing(exc: RegistryError) -> bool:
    """The target refused a manifest because something it references is not there."""
    return bool(_MISSING_CODES & set(exc.codes)) or (exc.status == 400 and exc.method == "PUT")


async def push_tree_checked(
    placement: BlobPlacement, tree: ImageTree, tag: str | None, label: str
) -> None:
    """:func:`push_tree`; when the target refuses a manifest for a blob the cache said it
    holds, forget what the cache knew about the repository and push again, checking every
    blob (except those the target confirmed during this run: ``RunState.placed``), at most
    :data:`STALE_CACHE_PUSHES` times in all."""
    attempt = 0
    while True:
        try:
            await push_tree(placement, tree, tag)
            return
        except RegistryError as exc:
            attempt += 1
            if not blob_missing(exc) or attempt > STALE_CACHE_PUSHES:
                raise
            if placement.trust_cache:
                log.info("%s: stale transfer cache (%s); rechecking blobs", label, exc)
                placement.run.cache.invalidate_repo(placement.target.host, placement.repo)
                placement = dataclasses.replace(placement, trust_cache=False)
            else:
                log.info("%s: manifest refused for a blob confirmed in this run (%s); again", label, exc)
                base, cap = _RESEND_BACKOFF
                await trio.sleep(backoff_delay(attempt - 1, _RNG, base=base, cap=cap))


__all__ = [
    "STALE_CACHE_PUSHES",
    "BlobPlacement",
    "blob_missing",
    "push_tree",
    "push_tree_checked",
    "repository_is_fresh",
]
