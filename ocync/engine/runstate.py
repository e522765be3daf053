"""The state every transfer of one run shares: endpoints, the transfer cache, reference
counts, blobs in flight per target registry, what the targets confirmed during the run, and
where each blob is needed (which decides staging). Mutated only from the run's trio tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import trio

from ocync.engine.cache import TransferCache
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.plan import BlobRefCounts, RefCountStatistics
from ocync.engine.staging import BlobStage, StagingStatistics


@dataclass(frozen=True, slots=True)
class RunStatistics:
    source_blob_pulls: int
    duplicate_blob_pulls: int  # source blob GETs beyond the first per blob (0 in a good run)
    actions: dict[str, int]  # blob placements by kind (mount, probe, head, upload, ...)
    refcounts: RefCountStatistics
    staging: StagingStatistics | None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "source_blob_pulls": self.source_blob_pulls,
            "duplicate_blob_pulls": self.duplicate_blob_pulls,
            "actions": dict(self.actions),
            "refcounts": self.refcounts.to_dict(),
        }
        if self.staging is not None:
            out["staging"] = self.staging.to_dict()
        return out


@dataclass(slots=True, repr=False)
class RunState:
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
    # BlobPlacement.ensure).
    placed: set[tuple[str, str, str]] = field(default_factory=set)
    stage_all: bool = False  # the run's targets span several mount groups
    # called with (bytes, seconds) after each blob copied from the source (ocync watch's metrics)
    on_blob: Callable[[int, float], None] | None = None

    def note_need(self, digest: str, group: str) -> None:
        self.spread.setdefault(digest, set()).add(group)

    def needs_staging(self, digest: str) -> bool:
        return self.stage_all or len(self.spread.get(digest, ())) > 1

    def __repr__(self) -> str:
        return (
            f"<RunState inflight={len(self.inflight)} pulls={sum(self.pulls.values())} "
            f"cache={self.cache!r}>"
        )

    def statistics(self) -> RunStatistics:
        return RunStatistics(
            source_blob_pulls=sum(self.pulls.values()),
            duplicate_blob_pulls=sum(n - 1 for n in self.pulls.values() if n > 1),
            actions=dict(sorted(self.actions.items())),
            refcounts=self.refcounts.statistics(),
            staging=self.stage.statistics() if self.stage else None,
        )


__all__ = ["RunState", "RunStatistics"]
