"""One (image, target): blobs first, then child manifests, then the tag's manifest.

Blobs go most-shared first; each one is made present the cheapest way the plan allows
(skip on a cache hit, cross-repository mount, self-mount probe, HEAD) and is uploaded only
when missing. Within a run a blob is pulled from the source at most once per target
registry: a second image needing a blob already in flight at that registry waits for it
and then mounts or skips. A tag's manifest is pushed only after every blob and child it
references is present, so an interrupted run never leaves a tag pointing at missing content
(OCI distribution-spec "Pushing Manifests": the registry may reject unknown blobs, but not
all do). OCI 1.1 referrers follow their subject: the referrers API, else the
``sha256-<hex>`` tag schema (merged into the target's index, never rewritten); with
``artifacts.refresh: always`` the referrers of an unchanged tag are listed too and those a
target lacks are copied (a signature added after mirroring).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ocync.engine.cache import TransferCache
from ocync.engine.discovery import ImageTree, MappingSpec, TargetRepo, WorkItem
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.plan import BlobActionKind, BlobRefCounts, choose_blob_action
from ocync.engine.report import BlobCounts, ImageResult, ImageStatus, redact
from ocync.engine.staging import BlobStage
from ocync.engine.tasks import run_all
from ocync.errors import ArtifactsMissing, ManifestError, NotFound, OcyncError, RegistryError
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, Manifest, merge_referrers_index
from ocync.registry.client import UploadSession

log = logging.getLogger("ocync.engine.transfer")

# Error codes a manifest PUT answers when something it references is not there
# (distribution-spec "Pushing Manifests"; distribution answers MANIFEST_BLOB_UNKNOWN).
_MISSING_CODES = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN"})


@dataclass(slots=True)
class TransferProgress:
    """How far one transfer got, kept outside it so that a transfer cancelled by an
    interrupt's drain deadline can still be reported (:func:`interrupted_result`)."""

    tally: BlobCounts = field(default_factory=BlobCounts)
    tag_pushed: bool = False
    referrers_wanted: int = 0


@dataclass(slots=True, repr=False)
class TransferContext:
    """State shared by every transfer of a run."""

    sources: Mapping[str, SourceEndpoint]
    targets: Mapping[str, TargetEndpoint]
    cache: TransferCache
    refcounts: BlobRefCounts = field(default_factory=BlobRefCounts)
    stage: BlobStage | None = None
    blob_concurrency: int = 6
    inflight: dict[tuple[str, str], trio.Event] = field(default_factory=dict)
    pulls: Counter[tuple[str, str]] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    # digest -> mount groups (target registry, or registry/namespace) that need it, over
    # everything discovered so far: more than one means a mount cannot carry it everywhere.
    spread: dict[str, set[str]] = field(default_factory=dict)
    # (target host, repository) -> absent when first asked (True) / present (False) / asking
    fresh: dict[tuple[str, str], bool | trio.Event] = field(default_factory=dict)
    # (target host, repository, digest) the target itself confirmed during this run (upload
    # committed, mount or probe answered 201, HEAD 200). Unlike the transfer cache this is
    # never invalidated: a stale-cache recheck must not place these blobs again (see
    # ensure_blob).
    placed: set[tuple[str, str, str]] = field(default_factory=set)
    stage_all: bool = False  # the run's targets span several mount groups

    def note_need(self, digest: str, group: str) -> None:
        self.spread.setdefault(digest, set()).add(group)

    def needs_staging(self, digest: str) -> bool:
        return self.stage_all or len(self.spread.get(digest, ())) > 1

    def __repr__(self) -> str:
        return (
            f"<TransferContext inflight={len(self.inflight)} pulls={sum(self.pulls.values())} "
            f"cache={self.cache!r}>"
        )

    def statistics(self) -> dict[str, object]:
        dup = sum(n - 1 for n in self.pulls.values() if n > 1)
        return {
            "source_blob_pulls": sum(self.pulls.values()),
            "duplicate_blob_pulls": dup,
            "actions": dict(sorted(self.actions.items())),
            "refcounts": self.refcounts.statistics(),
            **({"staging": self.stage.statistics()} if self.stage else {}),
        }


async def ensure_blob(
    ctx: TransferContext,
    target: TargetEndpoint,
    repo: str,
    source: SourceEndpoint,
    source_repo: str,
    desc: Descriptor,
    tally: BlobCounts,
    *,
    trust_cache: bool = True,
    stage_hint: bool = False,
) -> None:
    """Make ``desc`` present in ``repo`` at ``target``."""
    digest = str(desc.digest)
    key = (target.host, digest)
    while True:
        if trust_cache and ctx.cache.has_blob(target.host, repo, digest):
            tally.skipped += 1
            ctx.actions["cache_skip"] += 1
            return
        if (target.host, repo, digest) in ctx.placed:
            # Already confirmed in this repository during this run: never place it again,
            # even when rechecking a stale cache. Placing a blob the repository already
            # holds rewrites its link, and distribution 2.8 (filesystem driver) rewrites it
            # in place, truncated then written: a manifest PUT verifying that blob at the
            # same moment reads an empty link and answers 400 "DIGEST_INVALID;
            # MANIFEST_BLOB_UNKNOWN" (observed with docker-registry 2.8.2: a same-repository
            # self-mount ~1 ms after a retried manifest PUT's 400; upstream later made
            # PutContent write a temporary file and rename it).
            tally.skipped += 1
            ctx.actions["placed_skip"] += 1
            return
        pending = ctx.inflight.get(key)
        if pending is None:
            break
        await pending.wait()  # another image is placing it: then mount or skip
    event = trio.Event()
    ctx.inflight[key] = event
    try:
        await _place_blob(ctx, target, repo, source, source_repo, desc, tally, trust_cache, stage_hint)
    finally:
        del ctx.inflight[key]
        event.set()


def _confirmed(ctx: TransferContext, target: TargetEndpoint, repo: str, digest: str) -> None:
    """The target answered that ``digest`` is in ``repo`` (cache entry + run-scoped fact)."""
    ctx.cache.record_blob(target.host, repo, digest)
    ctx.placed.add((target.host, repo, digest))


async def _place_blob(
    ctx: TransferContext,
    target: TargetEndpoint,
    repo: str,
    source: SourceEndpoint,
    source_repo: str,
    desc: Descriptor,
    tally: BlobCounts,
    trust_cache: bool,
    stage_hint: bool,
) -> None:
    digest = str(desc.digest)
    holders = ctx.cache.holders(target.host, digest) if trust_cache else []
    action = choose_blob_action(
        repo,
        holders=holders,
        committed=ctx.cache.committed(target.host),
        scope=target.mount_scope,
        self_probe=target.mount_probe_ok,
    )
    session: UploadSession | None = None
    ctx.actions[action.kind.value] += 1
    if action.kind is BlobActionKind.MOUNT:
        assert action.from_repo is not None
        outcome = await target.mount_blob(repo, desc, action.from_repo)
        if outcome.mounted:
            _confirmed(ctx, target, repo, digest)
            tally.mounted += 1
            return
        ctx.cache.invalidate_blob(target.host, action.from_repo, digest)
        session = outcome.session
    elif action.kind is BlobActionKind.PROBE:
        outcome = await target.mount_blob(repo, desc, repo)
        if outcome.mounted:
            _confirmed(ctx, target, repo, digest)
            tally.skipped += 1
            return
        session = outcome.session
    elif trust_cache and await repository_is_fresh(ctx, target, repo):
        # The repository did not exist when this run started and nothing we did not put
        # there can have appeared since: the HEAD could only answer 404.
        ctx.actions["fresh_upload"] += 1
    elif await target.head_blob(repo, desc):
        _confirmed(ctx, target, repo, digest)
        tally.skipped += 1
        return
    await _upload(ctx, target, repo, source, source_repo, desc, session, stage_hint)
    _confirmed(ctx, target, repo, digest)
    tally.transferred += 1
    tally.bytes += desc.size


async def repository_is_fresh(ctx: TransferContext, target: TargetEndpoint, repo: str) -> bool:
    """Whether ``repo`` did not exist at the target when first asked (one tag-list request
    per repository and run; repositories the cache knows as committed are never fresh)."""
    key = (target.host, repo)
    state = ctx.fresh.get(key)
    if isinstance(state, bool):
        return state  # the answer from before this run wrote into the repository
    if repo in ctx.cache.committed(target.host):
        ctx.fresh[key] = False
        return False
    if state is not None:
        await state.wait()
        return ctx.fresh.get(key) is True
    event = trio.Event()
    ctx.fresh[key] = event
    fresh = False
    try:
        fresh = not await target.repository_exists(repo)
    except OcyncError:
        fresh = False  # unknown: fall back to HEAD
    finally:
        ctx.fresh[key] = fresh
        event.set()
    return fresh


async def _upload(
    ctx: TransferContext,
    target: TargetEndpoint,
    repo: str,
    source: SourceEndpoint,
    source_repo: str,
    desc: Descriptor,
    session: UploadSession | None,
    stage_hint: bool,
) -> None:
    digest = str(desc.digest)
    if ctx.stage is not None and (stage_hint or ctx.needs_staging(digest)):

        async def download(path: Path) -> None:
            ctx.pulls[(source.host, digest)] += 1
            await source.download_blob(source_repo, desc, path)

        async with ctx.stage.use(desc, download) as path:
            if path is not None:
                await target.upload_file(repo, desc, path, session)
                return
    ctx.pulls[(source.host, digest)] += 1
    await target.copy_blob(source, source_repo, repo, desc, session)


def _blob_missing(exc: RegistryError) -> bool:
    return bool(_MISSING_CODES & set(exc.codes)) or (exc.status == 400 and exc.method == "PUT")


async def push_tree(
    ctx: TransferContext,
    tree: ImageTree,
    tag: str | None,
    target: TargetEndpoint,
    repo: str,
    source: SourceEndpoint,
    source_repo: str,
    tally: BlobCounts,
    *,
    trust_cache: bool = True,
    stage_hint: bool = False,
) -> None:
    """Blobs (most-shared first), then children, then the root under ``tag`` (or digest)."""
    by_digest = {str(d.digest): d for d in tree.blobs()}
    ordered = ctx.refcounts.order(by_digest)
    if trust_cache and not target.mount_probe_ok:
        # Ask "did the repository exist?" before this run writes anything into it.
        await repository_is_fresh(ctx, target, repo)
    await run_all(
        (
            functools.partial(
                ensure_blob,
                ctx,
                target,
                repo,
                source,
                source_repo,
                by_digest[d],
                tally,
                trust_cache=trust_cache,
                stage_hint=stage_hint,
            )
            for d in ordered
        ),
        limit=ctx.blob_concurrency,
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
    if tag is not None:
        ctx.cache.record_tag(target.host, repo, tag, tree.digest)
    else:
        ctx.cache.record_committed(target.host, repo)


@dataclass(frozen=True, slots=True)
class ReferrerSet:
    """The subject's referrers to copy (already fetched: fetched once, pushed to every target)."""

    trees: tuple[ImageTree, ...] = ()
    wanted: tuple[Descriptor, ...] = ()
    fallback: Manifest | None = None  # the source's tag-schema index, when that is how we found them


async def list_wanted_referrers(
    mapping: MappingSpec,
    subject: str,
    source: SourceEndpoint,
    referrer_tags: frozenset[str] | None,
) -> tuple[tuple[Descriptor, ...], Manifest | None]:
    """The subject's referrers the ``artifacts`` policy wants, and the source's tag-schema
    index when that is how they were found. At most one request: the referrers API, else
    the ``sha256-<hex>`` tag (none when the tag listing showed no such tag)."""
    digest = Digest.parse(subject)
    fallback: Manifest | None = None
    listed = await source.list_referrers(mapping.source_repo, subject)
    if listed is None and referrer_tags is not None and digest.tag_fallback not in referrer_tags:
        listed = []  # the listing shows no fallback tag for this subject: nothing to fetch
    if listed is None:
        try:
            fallback = await source.get_manifest(mapping.source_repo, digest.tag_fallback)
            listed = list(fallback.manifests)
        except NotFound:
            listed = []
    policy = mapping.artifacts
    wanted = tuple(d for d in listed if d.is_manifest and policy.wants(d.artifact_type))
    return wanted, fallback


async def fetch_referrer_trees(
    source: SourceEndpoint, source_repo: str, wanted: Sequence[Descriptor]
) -> tuple[ImageTree, ...]:
    trees = []
    for desc in wanted:
        manifest = await source.get_manifest(source_repo, str(desc.digest))
        children = [
            await source.get_manifest(source_repo, str(c.digest)) for c in manifest.manifests
        ]
        trees.append(ImageTree(manifest, tuple(children)))
    return tuple(trees)


async def find_referrers(item: WorkItem, source: SourceEndpoint) -> ReferrerSet:
    """Look up and fetch the subject's referrers before anything is pushed, so that
    ``require_artifacts`` fails an image without writing it."""
    policy = item.mapping.artifacts
    if not policy.enabled:
        return ReferrerSet()
    wanted, fallback = await list_wanted_referrers(
        item.mapping, item.tree.digest, source, item.referrer_tags
    )
    if policy.require and not wanted:
        raise ArtifactsMissing(
            f"{item.mapping.source_label(item.tag)} has no artifacts (require_artifacts is set)"
        )
    trees = await fetch_referrer_trees(source, item.mapping.source_repo, wanted)
    return ReferrerSet(trees, wanted, fallback)


async def copy_referrers(
    ctx: TransferContext,
    source_repo: str,
    subject: str,
    found: ReferrerSet,
    target: TargetEndpoint,
    repo: str,
    source: SourceEndpoint,
    tally: BlobCounts,
    *,
    stage_hint: bool = False,
) -> None:
    """Push ``found.trees`` after their subject; keep the tag-schema index (listing every
    wanted referrer) where the target has no referrers API."""
    if not found.wanted:
        return
    for tree in found.trees:
        await push_tree(
            ctx, tree, None, target, repo, source, source_repo, tally, stage_hint=stage_hint
        )
        ctx.cache.record_referrer(target.host, repo, tree.digest)
        tally.referrers += 1
    if target.referrers_api is not True and found.trees:
        # Registries without the referrers API: maintain the tag-schema fallback index,
        # merged with the one the target has (referrers added at the mirror stay listed).
        tag = Digest.parse(subject).tag_fallback
        existing: Manifest | None = None
        # A repository that had no tags when the run started holds no index but ours (one
        # tag-list request per repository and run, shared with the blob checks).
        if not await repository_is_fresh(ctx, target, repo):
            try:
                existing = await target.get_manifest(repo, tag)
            except NotFound:
                existing = None
        try:
            index = merge_referrers_index(existing, found.wanted, found.fallback)
        except ManifestError as exc:
            raise ManifestError(f"{repo}:{tag}: {exc}") from None
        if index is not None:
            await target.put_manifest(repo, tag, index)
    for desc in found.wanted:
        ctx.cache.record_referrer(target.host, repo, str(desc.digest))


async def refresh_referrers(
    ctx: TransferContext,
    mapping: MappingSpec,
    subject: str,
    dests: Sequence[TargetRepo],
    referrer_tags: frozenset[str] | None,
) -> dict[TargetRepo, BlobCounts]:
    """``artifacts.refresh: always`` for a tag already in sync at ``dests``: copy the
    referrers the source has and a target lacks (a signature added after the image was
    mirrored). Requests: one at the source (:func:`list_wanted_referrers`); at a target
    only a manifest HEAD per referrer the transfer cache has not seen there, then the
    copy of the missing ones (without the referrers API: reading the tag-schema index to
    merge into). Returns what was copied per target (referrers and their blobs)."""
    source = ctx.sources[mapping.source]
    wanted, fallback = await list_wanted_referrers(mapping, subject, source, referrer_tags)
    copied: dict[TargetRepo, BlobCounts] = {t: BlobCounts() for t in dests}
    if not wanted:
        return copied
    missing: dict[TargetRepo, list[Descriptor]] = {t: [] for t in dests}

    async def check(dest: TargetRepo, desc: Descriptor) -> None:
        target = ctx.targets[dest.registry]
        digest = str(desc.digest)
        if ctx.cache.has_referrer(target.host, dest.repo, digest):
            return
        if await target.head_manifest(dest.repo, digest) == digest:
            ctx.cache.record_referrer(target.host, dest.repo, digest)
        else:
            missing[dest].append(desc)

    await run_all(functools.partial(check, t, d) for t in dests for d in wanted)
    needed = {str(d.digest): d for t in dests for d in missing[t]}
    if not needed:
        return copied
    trees = {
        t.digest: t
        for t in await fetch_referrer_trees(source, mapping.source_repo, list(needed.values()))
    }
    stage_hint = len({ctx.targets[t.registry].host for t in dests}) > 1

    async def copy(dest: TargetRepo) -> None:
        order = {str(d.digest) for d in missing[dest]}
        found = ReferrerSet(
            tuple(tree for digest, tree in trees.items() if digest in order), wanted, fallback
        )
        await copy_referrers(
            ctx, mapping.source_repo, subject, found, ctx.targets[dest.registry], dest.repo,
            source, copied[dest], stage_hint=stage_hint,
        )

    await run_all(functools.partial(copy, t) for t in dests if missing[t])
    return copied


def failed_result(item: WorkItem, dest: TargetRepo, exc: OcyncError, seconds: float = 0.0) -> ImageResult:
    return ImageResult.failed(
        item.mapping.name,
        item.mapping.source_label(item.tag),
        dest.label(item.push_tag),
        exc,
        digest=item.tree.digest,
        seconds=seconds,
    )


def interrupted_result(
    item: WorkItem, dest: TargetRepo, progress: TransferProgress, seconds: float = 0.0
) -> ImageResult:
    """A transfer cut off by an interrupt, as far as it got: its tag may already be live
    (blobs and children are pushed before it) with referrers still missing."""
    tally = progress.tally
    if progress.tag_pushed:
        missing = max(progress.referrers_wanted - tally.referrers, 0)
        reason = f"tag pushed, {missing} referrer(s) not copied"
    else:
        reason = "tag not pushed"
    return ImageResult.synced(
        item.mapping.name,
        item.mapping.source_label(item.tag),
        dest.label(item.push_tag),
        item.tree.digest,
        tally,
        status=ImageStatus.INTERRUPTED,
        reason=f"interrupted: {reason}",
        seconds=seconds,
    )


async def transfer_image(
    ctx: TransferContext,
    item: WorkItem,
    dest: TargetRepo,
    referrers: ReferrerSet | None = None,
    progress: TransferProgress | None = None,
) -> ImageResult:
    """Copy one work item to one target; failures become the result, never an exception.
    ``referrers`` come from :func:`find_referrers` (looked up once per item); ``progress``
    is updated as the transfer goes (read by the caller if it is cancelled)."""
    start = trio.current_time()
    progress = progress if progress is not None else TransferProgress()
    progress.referrers_wanted = len(referrers.trees) if referrers is not None else 0
    tally = progress.tally
    source = ctx.sources[item.mapping.source]
    target = ctx.targets[dest.registry]
    stage_hint = len({ctx.targets[t.registry].host for t in item.targets}) > 1
    label_src = item.mapping.source_label(item.tag)
    label_dst = dest.label(item.push_tag)

    try:
        if referrers is not None and referrers.trees and target.referrers_api is not True:
            # Whether the repository is new to this run decides whether copy_referrers must
            # read the target's tag-schema index before merging into it: ask before writing.
            await repository_is_fresh(ctx, target, dest.repo)
        for attempt in (0, 1):
            try:
                await push_tree(
                    ctx,
                    item.tree,
                    item.push_tag,
                    target,
                    dest.repo,
                    source,
                    item.mapping.source_repo,
                    tally,
                    trust_cache=attempt == 0,
                    stage_hint=stage_hint,
                )
                break
            except RegistryError as exc:
                if attempt == 0 and _blob_missing(exc):
                    # The cache said a blob was there and the registry disagrees: forget
                    # what we knew about this repository and check every blob afresh
                    # (except those the target confirmed during this run: ctx.placed).
                    log.info("%s: stale transfer cache (%s); rechecking blobs", label_dst, exc)
                    ctx.cache.invalidate_repo(target.host, dest.repo)
                    continue
                raise
        progress.tag_pushed = True
        if referrers is not None:
            await copy_referrers(
                ctx,
                item.mapping.source_repo,
                item.tree.digest,
                referrers,
                target,
                dest.repo,
                source,
                tally,
                stage_hint=stage_hint,
            )
    except OcyncError as exc:
        return ImageResult.failed(
            item.mapping.name, label_src, label_dst, exc, digest=item.tree.digest, counts=tally,
            seconds=trio.current_time() - start,
        )
    except Exception as exc:  # a bug must not stop the other images
        log.debug("internal error while copying %s", label_dst, exc_info=True)
        return ImageResult(
            mapping=item.mapping.name,
            source=label_src,
            target=label_dst,
            status=ImageStatus.FAILED,
            digest=item.tree.digest,
            reason=redact(f"internal error: {type(exc).__name__}: {exc}"),
            seconds=trio.current_time() - start,
        )
    return ImageResult.synced(
        item.mapping.name, label_src, label_dst, item.tree.digest, tally,
        seconds=trio.current_time() - start,
    )


__all__ = [
    "TransferContext",
    "TransferProgress",
    "ReferrerSet",
    "copy_referrers",
    "ensure_blob",
    "failed_result",
    "fetch_referrer_trees",
    "find_referrers",
    "interrupted_result",
    "list_wanted_referrers",
    "refresh_referrers",
    "repository_is_fresh",
    "push_tree",
    "transfer_image",
]
