"""One tag's discovery: what each target lacks, with as few requests as the answers allow.

Requests: a manifest HEAD per target, then a source GET when no target has the tag (a HEAD
first would be waste), else a source HEAD to compare digests (HEADs are free on Docker Hub)
and the GET only if some target differs. Immutable tags the cache has seen at every target
cost nothing; a target tag the cache vouches for (ocync.engine.tagtrust) is not asked.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from ocync.engine.cache import TransferCache
from ocync.engine.discovery import (
    FetchedRoot,
    MappingSpec,
    OneImage,
    TagOutcome,
    TargetRepo,
    WorkItem,
    fetch_children,
    fetch_root,
)
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.nursery import run_all
from ocync.engine.pullplan import ImagePulls, image_pulls
from ocync.engine.tagtrust import trusted_targets
from ocync.errors import ConfigError, NotFound, OcyncError
from ocync.oci.manifest import Manifest


async def discover_tag(
    mapping: MappingSpec,
    tag: str,
    seq: int,
    source: SourceEndpoint,
    targets: dict[str, TargetEndpoint],
    cache: TransferCache,
    referrer_tags: frozenset[str] | None = None,
    *,
    push_scope: bool = True,
    pulls: ImagePulls | None = None,
) -> TagOutcome:
    """Decide what one tag needs; never raises an :class:`OcyncError` (it is the outcome).

    A warm run costs one source HEAD per tag. Under a pull quota the image's pulls are
    reserved in ``seq`` order, or it is deferred (ocync.engine.pullplan)."""
    if pulls is None:
        pulls = image_pulls(source, seq)
    try:
        known = _immutable_outcome(mapping, tag, targets, cache)
        if known is not None:
            return known
        source_digest, trusted = await trusted_targets(mapping, tag, source, targets, cache)
        if len(trusted) == len(mapping.targets):
            skips = tuple((t, "unchanged") for t in mapping.targets)
            return TagOutcome(
                tag, skipped=skips, digest=trusted[mapping.targets[0]], trusted=frozenset(trusted)
            )
        probe = _TagProbe(mapping, tag, source, targets, pulls, trusted)
        await probe.ask(push_scope)
        wanted, source_digest = await probe.wanted(source_digest)
        need = tuple(t for t in mapping.targets if probe.present.get(t) != wanted)
        skipped = tuple((t, "unchanged") for t in mapping.targets if t not in need)
        for t, _ in skipped:
            if t not in trusted:  # verified now; a trusted stamp keeps its age
                cache.record_tag(targets[t.registry].host, t.repo, probe.ref, wanted, source=source_digest)
        if not need:
            return TagOutcome(tag, skipped=skipped, digest=wanted, trusted=frozenset(trusted))
        root = probe.root or await fetch_root(source, mapping.source_repo, wanted, mapping.platforms, pulls)
        tree = await fetch_children(source, mapping.source_repo, root.manifest, root.source_digest, pulls)
        item = WorkItem(seq, mapping, tag, tree, need, root.warnings, referrer_tags, root.trimmed)
        return TagOutcome(
            tag, item=item, skipped=skipped, digest=tree.digest, trusted=frozenset(trusted)
        )
    except OcyncError as exc:
        return TagOutcome(tag, error=exc)
    finally:
        if pulls is not None:
            pulls.finish()


def _immutable_outcome(
    mapping: MappingSpec, tag: str, targets: dict[str, TargetEndpoint], cache: TransferCache
) -> TagOutcome | None:
    """An immutable tag the cache has seen at every target: skipped without a request."""
    if not mapping.tag_filter.is_immutable(tag):
        return None
    known = [cache.tag_digest(targets[t.registry].host, t.repo, tag) for t in mapping.targets]
    if not all(known):
        return None
    return TagOutcome(
        tag,
        skipped=tuple((t, "immutable tag present") for t in mapping.targets),
        digest=str(known[0]),
    )


class _TagProbe:
    """The target HEADs and the source GET of one tag not trusted at every target."""

    def __init__(
        self,
        mapping: MappingSpec,
        tag: str,
        source: SourceEndpoint,
        targets: dict[str, TargetEndpoint],
        pulls: ImagePulls | None,
        trusted: dict[TargetRepo, str],
    ) -> None:
        self.mapping = mapping
        self.tag = tag
        self.source = source
        self.targets = targets
        self.pulls = pulls
        self.trusted = trusted
        self.root: FetchedRoot | None = None
        self.present: dict[TargetRepo, str | None] = dict(trusted)
        self.ref = tag  # the reference asked at the targets

    async def _head_target(self, t: TargetRepo, push_scope: bool) -> None:
        endpoint = self.targets[t.registry]
        if push_scope:
            endpoint.want_push(t.repo)  # one pull,push token per repository, not two
        self.present[t] = await endpoint.head_manifest(t.repo, self.ref)

    async def _fetch_source_root(self) -> None:
        mapping = self.mapping
        self.root = await fetch_root(self.source, mapping.source_repo, self.tag, mapping.platforms, self.pulls)

    async def ask(self, push_scope: bool) -> None:
        """HEAD every untrusted target; GET the source root alongside when it is needed
        anyway, or after, when no target has the tag."""
        mapping = self.mapping
        if mapping.one_image is not None:
            await self._fetch_source_root()
            root = self.root
            assert root is not None
            check_expected_digest(mapping.one_image, root.manifest)
            self.ref = mapping.one_image.target_tag or str(root.manifest.digest)
        jobs: list[Callable[[], Awaitable[None]]] = [
            functools.partial(self._head_target, t, push_scope)
            for t in mapping.targets
            if t not in self.trusted
        ]
        if self.root is None and (mapping.platforms or not mapping.head_first):
            # A platform filter changes the digest (the index itself tells what the target
            # should hold), or HEADs are not wanted: the GET goes alongside the target HEADs.
            jobs.append(self._fetch_source_root)
        await run_all(jobs)
        if self.root is None and all(self.present.get(t) is None for t in mapping.targets):
            # Absent at every target: the GET is needed anyway, a source HEAD would be waste.
            await self._fetch_source_root()

    async def wanted(self, source_digest: str | None) -> tuple[str, str | None]:
        """The digest the targets should hold, and the source's manifest digest (a source
        HEAD when nothing was fetched and the trust check did not learn it)."""
        if self.root is not None:
            return str(self.root.manifest.digest), self.root.source_digest
        mapping = self.mapping
        found = source_digest or await self.source.head_manifest(mapping.source_repo, self.tag)
        if found is None:
            raise NotFound(
                f"tag {self.tag} not found in {mapping.source}/{mapping.source_repo}", status=404
            )
        return found, found


def check_expected_digest(one: OneImage, root: Manifest) -> None:
    """``DST@digest`` names what must land at the target: anything else is refused."""
    if one.expected_digest is not None and str(root.digest) != one.expected_digest:
        raise ConfigError(
            f"destination digest {one.expected_digest} does not match the manifest to push "
            f"({root.digest}): nothing was copied"
        )


__all__ = ["check_expected_digest", "discover_tag"]
