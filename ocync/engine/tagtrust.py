"""When a warm run may take the transfer cache's word for a target tag instead of a HEAD.

The cache stamps every target tag ocync pushes or verifies with the source digest it was made
from and the time. While that stamp is younger than ``cache_ttl`` and the source still names
the same digest (one manifest HEAD), the target is not asked: a warm run costs one request per
tag. A tag whose stamp is missing, expired, from the future or for another source digest is
checked at the target as before. ``verify: always`` on a target registry (or
``--verify-targets``) turns this off for tags other writers may move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ocync.engine.cache import CheckedTag, TransferCache
from ocync.errors import NotFound

if TYPE_CHECKING:
    from ocync.engine.discovery import MappingSpec, TargetRepo
    from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint


def stamp_fresh(checked: CheckedTag | None, now: float, ttl: float | None) -> bool:
    """The stamp may vouch for the target now (a stamp from the future vouches for nothing:
    its age is unknown)."""
    if checked is None or checked.at > now:
        return False
    return ttl is None or now - checked.at <= ttl


def trusted_digest(
    checked: CheckedTag | None, digest: str | None, source_digest: str, now: float, ttl: float | None
) -> str | None:
    """The target tag's digest if the cache vouches that it is still what ``source_digest``
    makes; None: ask the target."""
    if digest is None or not stamp_fresh(checked, now, ttl):
        return None
    assert checked is not None
    return digest if checked.source == source_digest else None


async def trusted_targets(
    mapping: MappingSpec,
    tag: str,
    source: SourceEndpoint,
    targets: Mapping[str, TargetEndpoint],
    cache: TransferCache,
) -> tuple[str | None, dict[TargetRepo, str]]:
    """(the source digest if it was asked, the targets the cache vouches for -> their digest).

    The source HEAD is sent only when some target has a fresh stamp: otherwise discovery
    proceeds as without a cache (and may need a GET rather than a HEAD)."""
    eligible = [t for t in mapping.targets if t.registry not in mapping.verify_targets]
    if mapping.one_image is not None or not mapping.head_first or not eligible:
        return None, {}
    now, ttl = cache.clock(), cache.tag_ttl
    stamps = {t: cache.checked_tag(targets[t.registry].host, t.repo, tag) for t in eligible}
    if not any(stamp_fresh(s, now, ttl) for s in stamps.values()):
        return None, {}
    found = await source.head_manifest(mapping.source_repo, tag)
    if found is None:
        raise NotFound(f"tag {tag} not found in {mapping.source}/{mapping.source_repo}", status=404)
    trusted: dict[TargetRepo, str] = {}
    for t, stamp in stamps.items():
        digest = trusted_digest(
            stamp, cache.tag_digest(targets[t.registry].host, t.repo, tag), found, now, ttl
        )
        if digest is not None:
            trusted[t] = digest
    return found, trusted


__all__ = ["stamp_fresh", "trusted_digest", "trusted_targets"]
