"""``--shard I/N``: which mappings one of N parallel runs (an Indexed Job's pods) keeps.

Pure: a mapping's stable key (source registry + repository + targets, never its position in
the config) is hashed with SHA-256 and taken modulo N, so the N shards are disjoint and
complete, and a mapping stays on its shard across runs, machines and config reorderings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ocync.errors import ConfigError

if TYPE_CHECKING:
    from ocync.config import ResolvedMapping

T = TypeVar("T")

# Kubernetes sets this in every pod of an Indexed Job (batch/v1, completionMode: Indexed).
JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"
SHARD_ENV = "OCYNC_SHARD"


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: need 0 <= I < N and N >= 1")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def cache_stem(self) -> str:
        """Each shard keeps its own transfer cache (one run per file, one lock per file)."""
        return f"transfer-cache.shard-{self.index}-of-{self.count}"


def parse_shard(text: str, what: str = "--shard") -> Shard:
    """``I/N`` -> Shard; anything else is one ConfigError line naming ``what``."""
    index, sep, count = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        return Shard(int(index), int(count))
    except (ValueError, ConfigError):
        raise ConfigError(f"{what} {text!r}: expected I/N with 0 <= I < N") from None


def shard_from_env(
    shard: str | None, shards: int | None, env: Mapping[str, str]
) -> Shard | None:
    """The shard a run keeps: ``--shard`` first, then ``OCYNC_SHARD``, then ``--shards N``
    with the Indexed Job's ``JOB_COMPLETION_INDEX``; None means every mapping."""
    if shard is not None:
        return parse_shard(shard)
    if env.get(SHARD_ENV):
        return parse_shard(env[SHARD_ENV], SHARD_ENV)
    if shards is None:
        return None
    raw = env.get(JOB_INDEX_ENV)
    if raw is None:
        raise ConfigError(f"--shards {shards} needs --shard I/N or {JOB_INDEX_ENV} in the environment")
    return parse_shard(f"{raw}/{shards}", f"{JOB_INDEX_ENV}={raw!r} with --shards")


def mapping_key(source_host: str, repository: str, targets: Iterable[tuple[str, str]]) -> str:
    """The stable key: source registry + repository + each (target registry, repository),
    targets sorted so that listing them in another order keeps the key."""
    parts = [f"{source_host}/{repository}", *sorted(f"{h}/{r}" for h, r in targets)]
    return "\n".join(parts)


def resolved_key(mapping: ResolvedMapping) -> str:
    """:func:`mapping_key` of one resolved ``mappings:`` entry."""
    return mapping_key(
        mapping.source.host,
        mapping.repo_from,
        ((t.host, repo) for t, repo in zip(mapping.targets, mapping.target_repos, strict=True)),
    )


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) a key belongs to."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(items: Sequence[T], key: Callable[[T], str], shard: Shard | None) -> list[T]:
    """The items of ``shard``, in their original order (all of them when ``shard`` is None)."""
    if shard is None:
        return list(items)
    return [item for item in items if shard_of(key(item), shard.count) == shard.index]


def split(items: Sequence[T], key: Callable[[T], str], count: int) -> list[list[T]]:
    """Every shard's items: ``split(...)[i] == select(..., Shard(i, count))``."""
    out: list[list[T]] = [[] for _ in range(count)]
    for item in items:
        out[shard_of(key(item), count)].append(item)
    return out


__all__ = [
    "JOB_INDEX_ENV",
    "SHARD_ENV",
    "Shard",
    "mapping_key",
    "parse_shard",
    "resolved_key",
    "select",
    "shard_from_env",
    "shard_of",
    "split",
]
