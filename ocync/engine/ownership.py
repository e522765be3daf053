"""Which target tags ocync owns: it wrote or verified them for a mapping's source.

Pruning deletes only owned tags. Ownership is not freshness: the transfer cache's tag stamps
stop vouching for a target after ``cache_ttl``, but the record that ocync wrote a tag (and
from which source repository) is kept until the tag is pruned, so a prune still works after
an expired cache. Persisted as the cache payload's ``owned`` section (absent in older files:
nothing is owned, nothing is pruned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OwnedTag:
    """A target tag ocync wrote or verified: the digest it held then, and the source
    repository (``host/repo``) of the mapping it was made for."""

    digest: str
    source: str


class TagOwnership:
    """registry -> ``repo:tag`` -> :class:`OwnedTag`."""

    def __init__(self) -> None:
        self._owned: dict[str, dict[str, OwnedTag]] = {}

    def record(self, registry: str, repo: str, tag: str, digest: str, source: str) -> None:
        self._owned.setdefault(registry, {})[f"{repo}:{tag}"] = OwnedTag(digest, source)

    def forget(self, registry: str, repo: str, tag: str) -> None:
        self._owned.get(registry, {}).pop(f"{repo}:{tag}", None)

    def owned_tags(self, registry: str, repo: str, source: str) -> dict[str, str]:
        """Tags of ``repo`` at ``registry`` owned for ``source`` -> the digest ocync left."""
        prefix = f"{repo}:"
        return {
            key[len(prefix):]: owned.digest
            for key, owned in self._owned.get(registry, {}).items()
            if key.startswith(prefix) and ":" not in key[len(prefix):] and owned.source == source
        }

    def __len__(self) -> int:
        return sum(len(tags) for tags in self._owned.values())

    def to_payload(self, registry: str) -> dict[str, list[str]]:
        return {k: [o.digest, o.source] for k, o in sorted(self._owned.get(registry, {}).items())}

    def registries(self) -> set[str]:
        return set(self._owned)

    def load(self, registry: str, value: Any) -> None:
        """``{"repo:tag": [digest, source]}``; ValueError for any other shape."""
        if not isinstance(value, dict):
            raise ValueError("owned is not an object")
        for key, item in value.items():
            if not (
                isinstance(item, list) and len(item) == 2 and all(isinstance(i, str) for i in item)
            ):
                raise ValueError(f"owned entry {key!r} is not [digest, source]")
            self._owned.setdefault(registry, {})[key] = OwnedTag(item[0], item[1])

    def __repr__(self) -> str:
        return f"<TagOwnership tags={len(self)}>"


__all__ = ["OwnedTag", "TagOwnership"]
