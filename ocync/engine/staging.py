"""Multi-target staging: pull a blob once, push it to several target registries.

A blob needed by more than one target registry is downloaded once into a content-addressed
file under ``<cache_dir>/staging/`` (written to a temporary name, verified by the source
download, then renamed: atomic), and every target uploads from that file. The total staged
size respects ``staging_size_limit``: a blob that would not fit is not staged and each target
streams it from the source instead (correct, one extra pull per extra registry). Staged
files live for the run and are removed at its end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ocync.oci.manifest import Descriptor


class BlobStage:
    """Content-addressed staging area with a size budget and one download per digest."""

    def __init__(self, directory: Path, *, size_limit: int | None) -> None:
        self.directory = Path(directory)
        self.size_limit = size_limit
        self._ready: dict[str, Path] = {}
        self._pending: dict[str, trio.Event] = {}
        self._reserved = 0
        self._staged_bytes = 0
        self._downloads = 0
        self._reuses = 0
        self._refused = 0

    def _path_for(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self.directory / algorithm / encoded

    def fits(self, size: int) -> bool:
        return self.size_limit is None or self._reserved + size <= self.size_limit

    async def obtain(
        self, desc: Descriptor, download: Callable[[Path], Awaitable[None]]
    ) -> Path | None:
        """The staged file for ``desc`` (downloading it with ``download(tmp_path)`` once),
        or None when it does not fit the budget or the download failed (caller streams)."""
        key = str(desc.digest)
        while True:
            if key in self._ready:
                self._reuses += 1
                return self._ready[key]
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()
            if key not in self._ready:
                return None  # the other download failed: let the caller stream
        if not self.fits(desc.size):
            self._refused += 1
            return None
        event = trio.Event()
        self._pending[key] = event
        self._reserved += desc.size
        final = self._path_for(key)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.partial")
        ok = False
        try:
            await trio.Path(final.parent).mkdir(parents=True, exist_ok=True)
            await download(tmp)
            await trio.Path(tmp).rename(final)
            self._ready[key] = final
            self._downloads += 1
            self._staged_bytes += desc.size
            ok = True
            return final
        finally:
            if not ok:
                self._reserved -= desc.size
                with contextlib.suppress(OSError):
                    tmp.unlink()
            del self._pending[key]
            event.set()

    def cleanup(self) -> None:
        """Remove every staged file (end of run)."""
        for path in list(self._ready.values()):
            with contextlib.suppress(OSError):
                path.unlink()
        self._ready.clear()
        self._reserved = 0

    def statistics(self) -> dict[str, int]:
        return {
            "staged_blobs": self._downloads,
            "staged_bytes": self._staged_bytes,
            "reuses": self._reuses,
            "refused_over_limit": self._refused,
        }

    def __repr__(self) -> str:
        return f"<BlobStage {self.directory} staged={self._downloads} limit={self.size_limit}>"


__all__ = ["BlobStage"]
