"""Multi-target staging: pull a blob once, push it to several target registries.

A blob needed by more than one target registry is downloaded once into a content-addressed
file under ``<cache_dir>/staging/`` (written to a temporary name, verified by the source
download, then renamed: atomic), and every target uploads from that file. The total staged
size respects ``staging_size_limit``: the least recently used files no upload holds make room,
and a blob that still would not fit is not staged (each target then streams it from the
source: correct, one extra pull per extra registry). Whatever is left is removed at the end.
A cache_dir that cannot take a file (full disk, quota, read-only) is an expected condition:
one warning, and every later blob of the run is streamed the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from ocync.oci.manifest import Descriptor

log = logging.getLogger("ocync.engine.staging")


def reserve_file(path: Path, size: int) -> None:
    """Create ``path`` with ``size`` bytes allocated, so that a full disk (ENOSPC), a quota
    (EDQUOT) or a read-only cache_dir shows here, before anything is pulled from the source,
    and the download cannot run out of space half-way (where the filesystem can allocate)."""
    with open(path, "wb") as fh:
        allocate = getattr(os, "posix_fallocate", None)
        if allocate is None or size == 0:
            return
        try:
            allocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # cannot preallocate: fine
                raise


@dataclass(frozen=True, slots=True)
class StagingStatistics:
    staged_blobs: int  # blobs downloaded into the stage
    staged_bytes: int
    reuses: int  # uploads served from a staged file
    refused_over_limit: int  # blobs that would have exceeded staging_size_limit
    evicted: int
    held_bytes: int  # reserved right now

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class BlobStage:
    """Content-addressed staging area with a size budget and one download per digest.

    ``async with stage.use(desc, download) as path:`` yields the staged file (downloading it
    once with ``download(tmp_path)``) or None when it cannot be staged (the caller streams).
    While a caller holds a file it is never evicted; when the budget is full the least
    recently used unheld files make room."""

    def __init__(self, directory: Path, *, size_limit: int | None) -> None:
        self.directory = Path(directory)
        self.size_limit = size_limit
        self._ready: dict[str, Path] = {}  # insertion order = least recently used first
        self._sizes: dict[str, int] = {}
        self._readers: dict[str, int] = {}
        self._pending: dict[str, trio.Event] = {}
        self._reserved = 0
        self._staged_bytes = 0
        self._downloads = 0
        self._reuses = 0
        self._refused = 0
        self._evicted = 0
        self._unwritable = False

    def _path_for(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self.directory / algorithm / encoded

    def _make_room(self, size: int) -> bool:
        if self.size_limit is None:
            return True
        for key in list(self._ready):
            if self._reserved + size <= self.size_limit:
                break
            if self._readers.get(key, 0) == 0:
                path = self._ready.pop(key)
                self._reserved -= self._sizes.pop(key)
                self._evicted += 1
                with contextlib.suppress(OSError):
                    path.unlink()
        return self._reserved + size <= self.size_limit

    @asynccontextmanager
    async def use(
        self, desc: Descriptor, download: Callable[[Path], Awaitable[None]]
    ) -> AsyncIterator[Path | None]:
        key = str(desc.digest)
        path = await self._acquire(key, desc.size, download)
        if path is not None:
            self._readers[key] = self._readers.get(key, 0) + 1
        try:
            yield path
        finally:
            if path is not None:
                self._readers[key] -= 1

    async def _acquire(
        self, key: str, size: int, download: Callable[[Path], Awaitable[None]]
    ) -> Path | None:
        while True:
            if key in self._ready:
                self._reuses += 1
                self._ready[key] = self._ready.pop(key)  # most recently used
                return self._ready[key]
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()
            if key not in self._ready:
                return None  # the other download failed: let the caller stream
        if self._unwritable:
            return None  # staging failed earlier in this run (warned then): stream
        if not self._make_room(size):
            self._refused += 1
            return None
        event = trio.Event()
        self._pending[key] = event
        self._reserved += size
        final = self._path_for(key)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.partial")
        ok = False
        try:
            try:
                await trio.Path(final.parent).mkdir(parents=True, exist_ok=True)
                await trio.to_thread.run_sync(reserve_file, tmp, size)
                await download(tmp)
                await trio.Path(tmp).rename(final)
            except OSError as exc:
                # Only the staging file raises OSError here (the download maps network
                # failures to TransportError): the caller and everyone waiting stream instead.
                self._cannot_stage(exc)
                return None
            self._ready[key] = final
            self._sizes[key] = size
            self._downloads += 1
            self._staged_bytes += size
            ok = True
            return final
        finally:
            if not ok:
                self._reserved -= size
                with contextlib.suppress(OSError):
                    tmp.unlink()
            del self._pending[key]
            event.set()

    def _cannot_stage(self, exc: OSError) -> None:
        if not self._unwritable:
            log.warning(
                "cannot stage blobs under %s (%s): each target pulls its own copy from the "
                "source for the rest of this run",
                self.directory,
                exc.strerror or exc,
            )
        self._unwritable = True

    def cleanup(self) -> None:
        """Remove every staged file (end of run)."""
        for path in list(self._ready.values()):
            with contextlib.suppress(OSError):
                path.unlink()
        self._ready.clear()
        self._sizes.clear()
        self._reserved = 0

    def statistics(self) -> StagingStatistics:
        return StagingStatistics(
            staged_blobs=self._downloads,
            staged_bytes=self._staged_bytes,
            reuses=self._reuses,
            refused_over_limit=self._refused,
            evicted=self._evicted,
            held_bytes=self._reserved,
        )

    def __repr__(self) -> str:
        return f"<BlobStage {self.directory} staged={self._downloads} limit={self.size_limit}>"


__all__ = ["BlobStage", "StagingStatistics"]
