"""The pure decisions of a sync: blob reference counts, leader order, mount sources.

No I/O and no clock: the pipeline feeds in what it discovered and what the transfer-state
cache knows, and these functions say what to do. Mount rules follow the OCI distribution
spec ("Mounting a blob from another repository": 201 = mounted, 202 = not fulfilled, upload
session handed back) and the observed scopes: distribution mounts across any repository
the caller can read; GHCR only within one org or user namespace.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from ocync.registry.profiles import MountScope  # profile data: the one mount-scope vocabulary


def namespace_of(repository: str) -> str:
    """The org or user part of a repository path (``myorg/app/x`` -> ``myorg``)."""
    return repository.partition("/")[0]


def mount_possible(scope: MountScope, source_repo: str, target_repo: str) -> bool:
    """Whether a mount from ``source_repo`` into ``target_repo`` can be fulfilled at all
    (the one mount rule: planning, analysis and the CLI all ask this)."""
    if source_repo == target_repo:
        return False
    if scope is MountScope.NONE:
        return False
    if scope is MountScope.NAMESPACE:
        return namespace_of(source_repo) == namespace_of(target_repo)
    return True


def mount_group(scope: MountScope, registry: str, repo: str) -> str:
    """Repositories of one group can share a blob by mounting; different groups cannot.
    A blob needed in several groups of one registry must be uploaded into each of them."""
    if scope is MountScope.ANY:
        return registry
    if scope is MountScope.NAMESPACE:
        return f"{registry}/{namespace_of(repo)}"
    return f"{registry}/{repo}"


class BlobActionKind(enum.Enum):
    """How to make one blob present in a target repository."""

    MOUNT = "mount"  # POST ?mount=&from=<holder>: 201 done, 202 upload on that session
    PROBE = "probe"  # POST ?mount=&from=<the target repo itself>: existence probe + session
    HEAD = "head"  # HEAD, then upload if missing


@dataclass(frozen=True, slots=True)
class BlobAction:
    kind: BlobActionKind
    from_repo: str | None = None


def choose_blob_action(
    target_repo: str,
    *,
    holders: Sequence[str],
    committed: Collection[str],
    scope: MountScope,
    self_probe: bool,
) -> BlobAction:
    """Pick the cheapest way to make a blob present in ``target_repo``.

    ``holders`` are the repositories at the same target registry known to hold the blob;
    a holder whose manifest is committed is preferred (its blobs will not be collected),
    then any holder (a blob uploaded earlier in this run). A mount that the profile's scope
    says cannot succeed is never attempted. Without a usable holder, a self-mount probe
    where the profile honours it (one request answers "present" or hands back a session),
    else HEAD first.
    """
    fallback: str | None = None
    for repo in holders:  # one pass, stopping at the first committed usable holder
        if not mount_possible(scope, repo, target_repo):
            continue
        if repo in committed:
            return BlobAction(BlobActionKind.MOUNT, repo)
        if fallback is None:
            fallback = repo
    if fallback is not None:
        return BlobAction(BlobActionKind.MOUNT, fallback)
    if self_probe and scope is not MountScope.NONE:
        return BlobAction(BlobActionKind.PROBE, target_repo)
    return BlobAction(BlobActionKind.HEAD)


@dataclass(frozen=True, slots=True)
class RefCountStatistics:
    images: int
    unique_blobs: int
    references: int  # blob references over every image and target
    shared_blobs: int  # blobs referenced more than once

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class BlobRefCounts:
    """How many (image, target repository) pairs reference each blob, across everything
    discovered so far. Used to order blobs (most-shared first) and images (leaders first:
    an image covering many shared blobs uploads them so followers can mount)."""

    __slots__ = ("_counts", "_images")

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._images = 0

    def add(self, blobs: Iterable[str]) -> None:
        """Count one image's unique blobs once each."""
        self._counts.update(set(blobs))
        self._images += 1

    def count(self, digest: str) -> int:
        return self._counts.get(digest, 0)

    def order(self, blobs: Iterable[str]) -> list[str]:
        """Unique blobs, most-shared first; ties keep their first-seen order."""
        unique = list(dict.fromkeys(blobs))
        return sorted(unique, key=lambda d: -self._counts.get(d, 0))

    def leader_score(self, blobs: Iterable[str]) -> int:
        """Shared references this image covers: sum over its blobs of (count - 1)."""
        return sum(max(self._counts.get(d, 0) - 1, 0) for d in set(blobs))

    def statistics(self) -> RefCountStatistics:
        return RefCountStatistics(
            images=self._images,
            unique_blobs=len(self._counts),
            references=sum(self._counts.values()),
            shared_blobs=sum(1 for n in self._counts.values() if n > 1),
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<BlobRefCounts images={s.images} unique={s.unique_blobs} shared={s.shared_blobs}>"


def exit_code_for(synced: int, skipped: int, failed: int, auth_failed: int, interrupted: bool) -> int:
    """The run's exit code: 0 everything synced or skipped, 1 some failed (or work left undone
    after an interrupt: the run did not end, so "all failed" cannot be said), 2 all failed,
    4 all failures were authentication failures. ``interrupted``: an interrupt left work undone."""
    if failed == 0:
        return 1 if interrupted else 0
    if synced + skipped > 0 or interrupted:
        return 1
    if auth_failed == failed:
        return 4
    return 2


__all__ = [
    "BlobAction",
    "BlobActionKind",
    "BlobRefCounts",
    "MountScope",
    "choose_blob_action",
    "exit_code_for",
    "mount_group",
    "mount_possible",
    "namespace_of",
]
