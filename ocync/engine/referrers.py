"""OCI 1.1 referrers follow their subject: which ones the ``artifacts`` policy wants (the
referrers API, else the ``sha256-<hex>`` tag schema), fetched once per image and pushed to
every target after the subject; without a referrers API at the target the tag-schema index
is merged into the target's (never rewritten). With ``artifacts.refresh: always`` the
referrers of an unchanged tag are listed too and those a target lacks are copied (a
signature added after mirroring).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from ocync.engine.blobplacement import BlobPlacement, push_tree_checked, repository_is_fresh
from ocync.engine.discovery import ImageTree, MappingSpec, TargetRepo, WorkItem
from ocync.engine.endpoints import SourceEndpoint
from ocync.engine.nursery import run_all
from ocync.engine.report import BlobCounts
from ocync.engine.runstate import RunState
from ocync.errors import ArtifactsMissing, ManifestError, NotFound
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, Manifest, merge_referrers_index


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
    wanted = tuple(d for d in listed if d.is_manifest and policy.allows(d.artifact_type))
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
    if policy.require_artifacts and not wanted:
        raise ArtifactsMissing(
            f"{item.mapping.source_label(item.tag)} has no artifacts (require_artifacts is set)"
        )
    trees = await fetch_referrer_trees(source, item.mapping.source_repo, wanted)
    return ReferrerSet(trees, wanted, fallback)


async def copy_referrers(placement: BlobPlacement, subject: str, found: ReferrerSet) -> None:
    """Push ``found.trees`` after their subject; keep the tag-schema index (listing every
    wanted referrer) where the target has no referrers API."""
    if not found.wanted:
        return
    run, target, repo = placement.run, placement.target, placement.repo
    placement = dataclasses.replace(placement, trust_cache=True)
    for tree in found.trees:
        await push_tree_checked(placement, tree, None, f"{target.host}/{repo}@{tree.digest}")
        run.cache.record_referrer(target.host, repo, tree.digest)
        placement.counts.referrers += 1
    if target.referrers_api is not True and found.trees:
        # Registries without the referrers API: maintain the tag-schema fallback index,
        # merged with the one the target has (referrers added at the mirror stay listed).
        tag = Digest.parse(subject).tag_fallback
        existing: Manifest | None = None
        # A repository that had no tags when the run started holds no index but ours (one
        # tag-list request per repository and run, shared with the blob checks).
        if not await repository_is_fresh(run, target, repo):
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
        run.cache.record_referrer(target.host, repo, str(desc.digest))


async def refresh_referrers(
    ctx: RunState,
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
        placement = BlobPlacement(
            ctx, ctx.targets[dest.registry], dest.repo, source, mapping.source_repo, copied[dest],
            stage_hint=stage_hint,
        )
        await copy_referrers(placement, subject, found)

    await run_all(functools.partial(copy, t) for t in dests if missing[t])
    return copied


__all__ = [
    "ReferrerSet",
    "copy_referrers",
    "fetch_referrer_trees",
    "find_referrers",
    "list_wanted_referrers",
    "refresh_referrers",
]
