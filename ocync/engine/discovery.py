"""Discovery: mappings -> tags -> manifests -> work items.

Per mapping: list the source tags (skipped when the filter is only literal includes), run
the tag filter pipeline, then per tag: one manifest HEAD per target, the source manifest
(HEAD first where the registry config says so, GET only when some target needs it) and the
index children. A tag whose digest already sits at every target is skipped. Immutable tags
the transfer cache has seen at every target cost no request at all. One tag's requests are
ocync.engine.tagdiscovery; this module holds the shapes and the fetches.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ocync.config.resolve import ArtifactPolicy, PrunePolicy  # the config's, for the engine
from ocync.engine.endpoints import SourceEndpoint
from ocync.engine.nursery import run_all
from ocync.engine.pullplan import ImagePulls
from ocync.errors import ManifestError, OcyncError
from ocync.oci.digestpin import REFERRERS_TAG, is_digest
from ocync.oci.manifest import Descriptor, Manifest, parse_manifest
from ocync.oci.platform import Platform, trim_index
from ocync.oci.repopattern import RepoPattern
from ocync.oci.tagfilter import TagFilter, TagSelection


@dataclass(frozen=True, slots=True)
class TargetRepo:
    """One destination of a mapping: a registry (config name) and a repository."""

    registry: str
    repo: str

    def label(self, tag: str | None = None) -> str:
        return f"{self.registry}/{self.repo}" + (f":{tag}" if tag else "")


@dataclass(frozen=True, slots=True)
class OneImage:
    """``ocync copy``: a mapping of exactly one image. The source manifest is fetched before
    any target is asked (a source problem is named before the destination is touched), it is
    pushed under ``target_tag`` (None: by its digest), and when ``expected_digest`` is set
    (``DST@sha256:...``) a root with any other digest fails the image before a write."""

    target_tag: str | None
    expected_digest: str | None = None


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """One resolved mapping: source repository, targets, filters (from the config)."""

    name: str
    source: str  # registry name
    source_repo: str
    targets: tuple[TargetRepo, ...]
    tag_filter: TagFilter = field(default_factory=TagFilter)
    platforms: tuple[Platform, ...] = ()
    artifacts: ArtifactPolicy = field(default_factory=ArtifactPolicy)
    head_first: bool = True
    list_tags: bool = True  # False when the filter is only literal includes
    # Target registries whose tags are HEADed on every run (``verify: always``,
    # ``--verify-targets``); the others are trusted from the transfer cache (ocync.engine.tagtrust).
    verify_targets: frozenset[str] = frozenset()
    prune: PrunePolicy | None = None  # None: off (ocync.engine.prune)
    one_image: OneImage | None = None  # ocync copy, and each digest pin
    # ``from: team/*``: source_repo and the targets' repos are patterns, expanded from the
    # source's catalog into concrete mappings (ocync.engine.namespaces).
    source_pattern: RepoPattern | None = None
    exclude: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()  # images pinned by digest (ocync.engine.digestpins)
    tag_template: str | None = None

    def push_tag(self, tag: str) -> str | None:
        """The tag the source's ``tag`` is pushed under at every target (None: by digest)."""
        return tag if self.one_image is None else self.one_image.target_tag

    def source_label(self, tag: str) -> str:
        sep = "@" if is_digest(tag) else ":"
        return f"{self.source}/{self.source_repo}{sep}{tag}"


@dataclass(frozen=True, slots=True)
class ImageTree:
    """What one tag needs at a target: the manifest pushed under the tag (a trimmed index
    when platforms are filtered) and the child manifests it references."""

    root: Manifest
    children: tuple[Manifest, ...] = ()
    source_digest: str = ""  # the source manifest the root was made from ("": the root's)

    def blobs(self) -> tuple[Descriptor, ...]:
        """Unique blobs across the root and its children, in first-seen order."""
        seen: dict[str, Descriptor] = {}
        for m in (self.root, *self.children):
            for d in m.blobs():
                if not d.is_foreign:
                    seen.setdefault(str(d.digest), d)
        return tuple(seen.values())

    def blob_digests(self) -> tuple[str, ...]:
        return tuple(str(d.digest) for d in self.blobs())

    @property
    def digest(self) -> str:
        return str(self.root.digest)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One tag to copy to the targets that lack it."""

    seq: int
    mapping: MappingSpec
    tag: str
    tree: ImageTree
    targets: tuple[TargetRepo, ...]
    warnings: tuple[str, ...] = ()
    # The source's referrers fallback tags seen in its listing (None: not listed), so a
    # registry without the referrers API costs no fallback GET for images without any.
    referrer_tags: frozenset[str] | None = None
    trimmed: tuple[str, ...] = ()  # the platforms kept when the source's index was trimmed

    @property
    def push_tag(self) -> str | None:
        """The tag the root is pushed under at every target (None: by its digest)."""
        return self.mapping.push_tag(self.tag)


@dataclass(frozen=True, slots=True)
class TagOutcome:
    """Discovery's verdict on one tag: a work item, or per-target skips, or an error."""

    tag: str
    item: WorkItem | None = None
    skipped: tuple[tuple[TargetRepo, str], ...] = ()  # (target, reason)
    digest: str = ""
    error: OcyncError | None = None
    # targets the transfer cache vouched for without being asked (ocync.engine.tagtrust)
    trusted: frozenset[TargetRepo] = frozenset()


@dataclass(slots=True)
class MappingDiscovery:
    """What discovery found for one mapping (also the dry run's report)."""

    mapping: MappingSpec
    listed: int = 0
    selection: TagSelection | None = None
    error: str = ""
    outcomes: list[TagOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        # Tags are discovered concurrently; report them in the selection's order (the
        # mapping's sort, else the listing's), the same on every run.
        position = {tag: i for i, tag in enumerate(self.selection.tags if self.selection else ())}
        outcomes = sorted(self.outcomes, key=lambda o: (position.get(o.tag, len(position)), o.tag))
        return {
            "mapping": self.mapping.name,
            "listed": self.listed,
            "selected": list(self.selection.tags) if self.selection else [],
            "stages": [
                {"name": s.name, "kept": len(s.kept), "dropped": len(s.dropped), "added": len(s.added)}
                for s in (self.selection.stages if self.selection else ())
            ],
            "would_copy": [
                {
                    "tag": o.tag,
                    "digest": o.digest,
                    "targets": [t.label() for t in o.item.targets],
                    "blobs": len(o.item.tree.blobs()),
                    "bytes": sum(d.size for d in o.item.tree.blobs()),
                }
                for o in outcomes
                if o.item is not None
            ],
            "up_to_date": [o.tag for o in outcomes if o.item is None and o.error is None],
            "errors": [f"{o.tag}: {o.error}" for o in outcomes if o.error is not None]
            + ([self.error] if self.error else []),
        }


def literal_only(flt: TagFilter) -> bool:
    """The tag list is not needed when nothing but literal includes can select a tag."""
    return not flt.glob and bool(flt.literal_includes) and not flt.glob_includes


@dataclass(frozen=True, slots=True)
class FetchedRoot:
    """The manifest to push under the tag, the warnings of its trim, and the platforms kept
    when the source's index was trimmed (empty: pushed as the source has it)."""

    manifest: Manifest
    warnings: tuple[str, ...] = ()
    trimmed: tuple[str, ...] = ()
    source_digest: str = ""  # the source's manifest digest (before any trim)


async def fetch_root(
    source: SourceEndpoint, repo: str, ref: str, platforms: Sequence[Platform],
    pulls: ImagePulls | None = None,
) -> FetchedRoot:
    """The source's manifest, or its index trimmed to ``platforms`` (a new digest); under a
    pull quota (``pulls``) its pull is reserved first (ocync.engine.pullplan)."""
    if pulls is not None:
        await pulls.reserve(1, probe=functools.partial(source.head_manifest, repo, ref))
        pulls.started += 1
    root = await source.get_manifest(repo, ref)
    digest = str(root.digest)
    if not root.is_index or not platforms:
        return FetchedRoot(root, source_digest=digest)
    trim = trim_index(root.raw, platforms)
    if not trim.changed:
        return FetchedRoot(root, tuple(trim.warnings()), source_digest=digest)
    trimmed = parse_manifest(trim.index_bytes, root.media_type)
    return FetchedRoot(trimmed, tuple(trim.warnings()), tuple(str(p) for p in trim.kept), digest)


async def fetch_children(
    source: SourceEndpoint, repo: str, root: Manifest, source_digest: str = "",
    pulls: ImagePulls | None = None,
) -> ImageTree:
    """The root with every child manifest of an index (fetched by digest, verified); under a
    pull quota all of their pulls are reserved first, or the image is deferred."""
    children: list[Manifest | None] = [None] * len(root.manifests)
    if pulls is not None:
        if root.manifests:
            await pulls.reserve(len(root.manifests))
            pulls.started += len(root.manifests)
        pulls.settle()

    def fetcher(i: int, desc: Descriptor) -> Callable[[], Awaitable[None]]:
        async def fetch() -> None:
            child = await source.get_manifest(repo, str(desc.digest))
            if child.is_index:
                raise ManifestError(f"{repo}@{desc.digest.short}: nested index is not supported")
            children[i] = child

        return fetch

    await run_all(fetcher(i, d) for i, d in enumerate(root.manifests))
    return ImageTree(root, tuple(c for c in children if c is not None), source_digest)


async def fetch_tree(
    source: SourceEndpoint, repo: str, ref: str, platforms: Sequence[Platform]
) -> tuple[ImageTree, tuple[str, ...]]:
    fetched = await fetch_root(source, repo, ref, platforms)
    return await fetch_children(source, repo, fetched.manifest), fetched.warnings


async def select_tags(
    mapping: MappingSpec, source: SourceEndpoint
) -> tuple[int, TagSelection, frozenset[str] | None]:
    """List (unless only literal includes) and filter the mapping's tags; also return the
    referrers fallback tags the listing showed (None when nothing was listed)."""
    listed: list[str] = []
    listing = mapping.list_tags and not literal_only(mapping.tag_filter)
    if listing:
        listed = await source.list_tags(mapping.source_repo)
    # Referrers tag-schema fallback tags (``sha256-<hex>``) belong to their subject: they are
    # copied with it under the ``artifacts`` policy, never as ordinary tags.
    tags = [t for t in listed if not REFERRERS_TAG.fullmatch(t)]
    fallback = frozenset(t for t in listed if REFERRERS_TAG.fullmatch(t)) if listing else None
    return len(listed), mapping.tag_filter.apply(tags), fallback


__all__ = [
    "ArtifactPolicy",
    "FetchedRoot",
    "ImageTree",
    "MappingDiscovery",
    "MappingSpec",
    "OneImage",
    "TagOutcome",
    "TargetRepo",
    "WorkItem",
    "fetch_children",
    "fetch_root",
    "fetch_tree",
    "literal_only",
    "select_tags",
]
