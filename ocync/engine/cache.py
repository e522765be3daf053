"""Transfer-state cache: which repositories at each target registry hold which blobs.

In memory during a run (this module), persisted between runs (:mod:`ocync.engine.cachefile`)
so a warm run skips blob HEADs and mounts
from repositories known to hold a blob. The file is written atomically (tmp + os.replace),
carries a SHA-256 checksum of its payload and a save time (``cache_ttl``); a corrupt, foreign
or expired file is discarded with a warning, except for its record of which target tags ocync
owns (ocync.engine.ownership: ownership is not freshness, pruning needs it after cache_ttl). An advisory ``fcntl`` lock guards it against a
concurrent run: the second run works without persisting rather than clobbering the first.
A stale entry (a mount or manifest push that says the blob is not there) is invalidated.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from ocync.engine.ownership import TagOwnership

_NONE: frozenset[str] = frozenset()



@dataclass(frozen=True, slots=True)
class CheckedTag:
    """A target tag as ocync last wrote or verified it."""

    source: str  # the source manifest's digest it was made from (before any platform trim)
    at: float  # wall-clock seconds


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    registries: int
    repositories: int
    blob_entries: int
    tags: int
    hits: int
    misses: int
    invalidations: int
    loaded: bool

    def to_dict(self) -> dict[str, int | bool]:
        return {
            "registries": self.registries,
            "repositories": self.repositories,
            "blob_entries": self.blob_entries,
            "tags": self.tags,
            "hits": self.hits,
            "misses": self.misses,
            "invalidations": self.invalidations,
            "loaded": self.loaded,
        }


class TransferCache:
    """Per target registry: repository -> blob digests present, repositories with a committed
    manifest, and tag -> manifest digest pushed or observed."""

    def __init__(self) -> None:
        self._blobs: dict[str, dict[str, set[str]]] = {}
        # reverse index, registry -> digest -> repositories: holders() is O(holders), not
        # O(repositories), which matters with thousands of repositories per registry
        self._where: dict[str, dict[str, set[str]]] = {}
        self._committed: dict[str, set[str]] = {}
        self._tags: dict[str, dict[str, str]] = {}  # registry -> "repo:tag" -> digest
        # registry -> "repo:tag" -> (source digest it was made from, wall-clock seconds when
        # ocync wrote or verified it): lets a warm run trust the target without asking it
        self._checked: dict[str, dict[str, CheckedTag]] = {}
        self.clock: Callable[[], float] = time.time  # stamps record_tag
        self.tag_ttl: float | None = None  # how long a checked tag is trusted (cache_ttl)
        # registry -> repo -> referrer manifest digests known present (artifacts.refresh: a
        # warm run asks the target nothing about referrers it has already seen there)
        self._referrers: dict[str, dict[str, set[str]]] = {}
        self.owned = TagOwnership()  # target tags ocync wrote or verified, for pruning
        self._hits = 0
        self._misses = 0
        self._invalidations = 0
        self.loaded = False

    # ---- blobs -------------------------------------------------------------------------
    def record_blob(self, registry: str, repo: str, digest: str) -> None:
        digest = sys.intern(digest)
        self._blobs.setdefault(registry, {}).setdefault(repo, set()).add(digest)
        self._where.setdefault(registry, {}).setdefault(digest, set()).add(repo)

    def has_blob(self, registry: str, repo: str, digest: str) -> bool:
        found = digest in self._blobs.get(registry, {}).get(repo, ())
        if found:
            self._hits += 1
        else:
            self._misses += 1
        return found

    def holders(self, registry: str, digest: str) -> list[str]:
        """Repositories at ``registry`` known to hold ``digest``, committed ones first."""
        committed = self._committed.get(registry, _NONE)
        found = self._where.get(registry, {}).get(digest, _NONE)
        if len(found) > 64:  # a base layer in thousands of repositories: no full sort
            return [r for r in found if r in committed] + [r for r in found if r not in committed]
        return sorted(found, key=lambda r: (r not in committed, r))

    def invalidate_blob(self, registry: str, repo: str, digest: str) -> None:
        """The blob turned out not to be in ``repo`` (failed mount from it, push rejected)."""
        digests = self._blobs.get(registry, {}).get(repo)
        if digests is not None and digest in digests:
            digests.discard(digest)
            self._where.get(registry, {}).get(digest, set()).discard(repo)
            self._invalidations += 1

    def invalidate_repo(self, registry: str, repo: str) -> None:
        """Forget everything about ``repo`` (its manifest push said a blob is unknown)."""
        dropped = self._blobs.get(registry, {}).pop(repo, None)
        if dropped is not None:
            where = self._where.get(registry, {})
            for digest in dropped:
                where.get(digest, set()).discard(repo)
            self._invalidations += 1
        self._committed.get(registry, set()).discard(repo)
        self._referrers.get(registry, {}).pop(repo, None)
        tags = self._tags.get(registry, {})
        checked = self._checked.get(registry, {})
        for key in [k for k in tags if k.rsplit(":", 1)[0] == repo]:
            del tags[key]
            checked.pop(key, None)

    # ---- manifests ---------------------------------------------------------------------
    def record_committed(self, registry: str, repo: str) -> None:
        self._committed.setdefault(registry, set()).add(repo)

    def committed(self, registry: str) -> AbstractSet[str]:
        """Repositories with a committed manifest (a live view: do not modify)."""
        return self._committed.get(registry, _NONE)

    def record_tag(
        self, registry: str, repo: str, tag: str, digest: str, *, source: str | None = None
    ) -> None:
        """``tag`` at the target holds ``digest`` (pushed, or seen by a HEAD now), made from
        the source manifest ``source`` (None: the same digest, nothing was trimmed)."""
        key = f"{repo}:{tag}"
        self._tags.setdefault(registry, {})[key] = digest
        self._checked.setdefault(registry, {})[key] = CheckedTag(source or digest, self.clock())
        self.record_committed(registry, repo)

    def tag_digest(self, registry: str, repo: str, tag: str) -> str | None:
        return self._tags.get(registry, {}).get(f"{repo}:{tag}")

    def checked_tag(self, registry: str, repo: str, tag: str) -> CheckedTag | None:
        """When and from which source digest ocync last wrote or verified the target tag
        (None: never, or a cache file from before these stamps were kept)."""
        return self._checked.get(registry, {}).get(f"{repo}:{tag}")

    def forget_tag(self, registry: str, repo: str, tag: str) -> None:
        """The target tag was deleted (pruned): nothing about it is known any more."""
        key = f"{repo}:{tag}"
        self._tags.get(registry, {}).pop(key, None)
        self._checked.get(registry, {}).pop(key, None)
        self.owned.forget(registry, repo, tag)

    def record_referrer(self, registry: str, repo: str, digest: str) -> None:
        """A referrer manifest is present in ``repo`` (pushed or seen by a HEAD)."""
        self._referrers.setdefault(registry, {}).setdefault(repo, set()).add(digest)

    def has_referrer(self, registry: str, repo: str, digest: str) -> bool:
        return digest in self._referrers.get(registry, {}).get(repo, _NONE)

    # ---- persistence -------------------------------------------------------------------
    def to_payload(self) -> dict[str, Any]:
        """Only repositories with a committed manifest are persisted: a blob uploaded to a
        repository whose manifest never landed may be garbage-collected."""
        registries: dict[str, Any] = {}
        every = set(self._blobs) | set(self._tags) | set(self._referrers) | self.owned.registries()
        for registry in sorted(every):
            committed = self._committed.get(registry, set())
            repos = {
                repo: sorted(digests)
                for repo, digests in sorted(self._blobs.get(registry, {}).items())
                if repo in committed and digests
            }
            registries[registry] = {
                "repositories": repos,
                "committed": sorted(committed),
                "tags": dict(sorted(self._tags.get(registry, {}).items())),
            }
            checked = {
                key: [c.source, c.at] for key, c in sorted(self._checked.get(registry, {}).items())
            }
            if checked:
                registries[registry]["checked"] = checked
            referrers = {
                repo: sorted(digests)
                for repo, digests in sorted(self._referrers.get(registry, {}).items())
                if repo in committed and digests
            }
            if referrers:
                registries[registry]["referrers"] = referrers
            owned = self.owned.to_payload(registry)
            if owned:
                registries[registry]["owned"] = owned
        return {"registries": registries}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TransferCache:
        """Rebuild a cache from :meth:`to_payload`; ValueError for anything of another shape
        (a file edited by hand or by another tool must not be half-trusted)."""
        cache = cls()
        registries = payload.get("registries")
        if not isinstance(registries, dict):
            raise ValueError("registries is not an object")
        for registry, entry in registries.items():
            if not isinstance(entry, dict):
                raise ValueError(f"registry {registry!r} is not an object")
            for repo, digests in _string_lists(entry.get("repositories", {}), "repositories"):
                for d in digests:
                    cache.record_blob(registry, repo, d)
            committed = entry.get("committed", [])
            if not isinstance(committed, list) or not all(isinstance(r, str) for r in committed):
                raise ValueError("committed is not a list of strings")
            cache._committed[registry] = set(committed)
            tags = entry.get("tags", {})
            if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
                raise ValueError("tags is not an object of strings")
            cache._tags[registry] = dict(tags)
            cache._checked[registry] = _checked_tags(entry.get("checked", {}))
            for repo, digests in _string_lists(entry.get("referrers", {}), "referrers"):
                for d in digests:
                    cache.record_referrer(registry, repo, d)
            cache.owned.load(registry, entry.get("owned", {}))
        cache.loaded = True
        return cache

    @classmethod
    def ownership_only(cls, payload: object) -> TransferCache:
        """An empty cache that keeps only which target tags ocync owns (an expired file:
        what is at the target is no longer vouched for, who wrote a tag still is)."""
        cache = cls()
        registries = payload.get("registries") if isinstance(payload, dict) else None
        if not isinstance(registries, dict):
            raise ValueError("registries is not an object")
        for registry, entry in registries.items():
            if not isinstance(entry, dict):
                raise ValueError(f"registry {registry!r} is not an object")
            cache.owned.load(registry, entry.get("owned", {}))
        return cache

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            registries=len(set(self._blobs) | set(self._tags)),
            repositories=sum(len(r) for r in self._blobs.values()),
            blob_entries=sum(len(d) for r in self._blobs.values() for d in r.values()),
            tags=sum(len(t) for t in self._tags.values()),
            hits=self._hits,
            misses=self._misses,
            invalidations=self._invalidations,
            loaded=self.loaded,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<TransferCache registries={s.registries} repositories={s.repositories} "
            f"blobs={s.blob_entries} hits={s.hits} misses={s.misses}>"
        )


def _string_lists(value: object, what: str) -> list[tuple[str, list[str]]]:
    """``{"repo": ["sha256:...", ...]}`` as items; ValueError for any other shape."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    for key, items in value.items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{what} of {key!r} is not a list of strings")
    return list(value.items())


def _checked_tags(value: object) -> dict[str, CheckedTag]:
    """``{"repo:tag": [source digest, seconds]}``; absent in files written before the stamps
    were kept (their tags are then checked at the target as before)."""
    if not isinstance(value, dict):
        raise ValueError("checked is not an object")
    out: dict[str, CheckedTag] = {}
    for key, item in value.items():
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or isinstance(item[1], bool)
            or not isinstance(item[1], int | float)
            or not math.isfinite(item[1])
        ):
            raise ValueError(f"checked entry {key!r} is not [digest, seconds]")
        out[key] = CheckedTag(item[0], float(item[1]))
    return out


__all__ = ["CacheStatistics", "CheckedTag", "TransferCache"]
