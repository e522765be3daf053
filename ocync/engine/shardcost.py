"""``ocync analyze --shards N``: how the mappings split and what the split costs.

Shards run as separate processes with separate caches, so a blob that mappings of two
shards share is pulled from the source once per shard instead of once in all: the extra
source pulls are the sum of each shard's unique blobs minus the unique blobs of the whole.
Pure: works on the resolved mappings, their specs and the blobs analyze found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ocync.config import ResolvedMapping
from ocync.engine.discovery import MappingSpec
from ocync.engine.sharding import resolved_key, shard_of
from ocync.oci.manifest import Descriptor


@dataclass(frozen=True, slots=True)
class ShardShare:
    index: int
    mappings: tuple[str, ...]
    tags: int
    unique_blobs: int
    unique_bytes: int


@dataclass(frozen=True, slots=True)
class ShardSplit:
    count: int
    shards: tuple[ShardShare, ...]
    extra_source_pulls: int  # blobs pulled more than once because shards share them
    extra_source_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "extra_source_pulls": self.extra_source_pulls,
            "extra_source_bytes": self.extra_source_bytes,
            "shards": [
                {"index": s.index, "mappings": list(s.mappings), "tags": s.tags,
                 "unique_blobs": s.unique_blobs, "unique_bytes": s.unique_bytes}
                for s in self.shards
            ],
        }

    def render_lines(self) -> list[str]:
        mib = 1024 * 1024
        lines = [f"shards: {self.count}"]
        for s in self.shards:
            lines.append(
                f"  shard {s.index}/{self.count}: {len(s.mappings)} mappings, {s.tags} tags, "
                f"{s.unique_blobs} blobs ({s.unique_bytes / mib:.1f} MiB)"
            )
            lines += [f"    {name}" for name in s.mappings]
        lines.append(
            f"  sharding costs {self.extra_source_pulls} extra source blob pulls "
            f"({self.extra_source_bytes / mib:.1f} MiB): blob dedup does not cross shards"
        )
        return lines


def shard_split(
    resolved: Sequence[ResolvedMapping],
    specs: Sequence[MappingSpec],
    trees: Iterable[tuple[MappingSpec, Sequence[Descriptor]]],
    count: int,
) -> ShardSplit:
    """``specs[i]`` is ``mapping_specs(resolved)[i]``; ``trees`` are (spec, blobs) per tag."""
    shard_by_name = {
        spec.name: shard_of(resolved_key(m), count) for m, spec in zip(resolved, specs, strict=True)
    }
    blobs: list[dict[str, int]] = [{} for _ in range(count)]
    tags = [0] * count
    everything: dict[str, int] = {}
    for spec, descriptors in trees:
        shard = shard_by_name[spec.name]
        tags[shard] += 1
        for d in descriptors:
            blobs[shard][str(d.digest)] = d.size
            everything[str(d.digest)] = d.size
    shares = tuple(
        ShardShare(
            index=i,
            mappings=tuple(spec.name for spec in specs if shard_by_name[spec.name] == i),
            tags=tags[i],
            unique_blobs=len(blobs[i]),
            unique_bytes=sum(blobs[i].values()),
        )
        for i in range(count)
    )
    return ShardSplit(
        count=count,
        shards=shares,
        extra_source_pulls=sum(s.unique_blobs for s in shares) - len(everything),
        extra_source_bytes=sum(s.unique_bytes for s in shares) - sum(everything.values()),
    )


__all__ = ["ShardShare", "ShardSplit", "shard_split"]
