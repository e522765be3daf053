"""Blob bytes of the mock, in memory and on disk: the fixed-block memory buffer, the sources the
server streams stored content from, and an upload session's bytes, hashed as they arrive.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path
from typing import Protocol


class BlobSource(Protocol):
    """Stored bytes the server streams out in large slices."""

    length: int

    def read(self, offset: int, size: int) -> bytes | memoryview: ...

    def close(self) -> None: ...


# Memory uploads fill fixed blocks: no reallocation of one ever-growing buffer (which copies the
# blob over and over) and no final join (which would hold it twice).
BLOCK_SIZE = 1 << 20


def _new_block(first: bool) -> bytearray | mmap.mmap:
    """A block for upload bytes. The first is a lazily-faulted bytearray (most blobs are small);
    later ones are pre-faulted anonymous maps: MAP_POPULATE faults a whole block in one syscall,
    measured ~1.5x faster than touching fresh pages one by one."""
    if first or not _POPULATE:
        return bytearray(BLOCK_SIZE)
    return mmap.mmap(-1, BLOCK_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE)


_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)


class Blocks:
    """Blob content in memory as fixed-size blocks (the last one may be shorter)."""

    __slots__ = ("blocks", "length", "_fill")

    def __init__(self) -> None:
        self.blocks: list[bytearray | mmap.mmap | bytes] = []
        self.length = 0
        self._fill = BLOCK_SIZE  # bytes used in the last block

    def append(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._fill == BLOCK_SIZE:
                self.blocks.append(_new_block(first=not self.blocks))
                self._fill = 0
            take = min(len(view), BLOCK_SIZE - self._fill)
            block = self.blocks[-1]
            assert not isinstance(block, bytes)
            block[self._fill : self._fill + take] = view[:take]
            self._fill += take
            self.length += take
            view = view[take:]

    def seal(self) -> Blocks:
        """Trim the last block; the content is immutable from here on."""
        if self.blocks and self._fill < BLOCK_SIZE:
            last = self.blocks[-1]
            if isinstance(last, mmap.mmap):
                self.blocks[-1] = last[: self._fill]
                last.close()
            elif isinstance(last, bytearray):
                del last[self._fill :]
        self._fill = BLOCK_SIZE
        return self

    def read(self, offset: int, size: int) -> memoryview:
        """Up to ``size`` bytes at ``offset``, never crossing a block (callers loop)."""
        index, start = divmod(offset, BLOCK_SIZE)
        if index >= len(self.blocks):
            return memoryview(b"")
        return memoryview(self.blocks[index])[start : start + size]

    def __bytes__(self) -> bytes:
        return b"".join(self.blocks)


class MemorySource:
    __slots__ = ("_data", "length")

    def __init__(self, data: bytes | bytearray | Blocks) -> None:
        self._data = data
        self.length = data.length if isinstance(data, Blocks) else len(data)

    def read(self, offset: int, size: int) -> memoryview:
        if isinstance(self._data, Blocks):
            return self._data.read(offset, size)
        return memoryview(self._data)[offset : offset + size]

    def close(self) -> None:
        pass


class FileSource:
    __slots__ = ("_fd", "length")

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self.length = os.fstat(self._fd).st_size

    def read(self, offset: int, size: int) -> bytes:
        # A page-cache read of <= 1 MiB takes well under a millisecond; not worth a thread hop.
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Upload:
    """An upload session: bytes so far, hashed as they arrive."""

    def __init__(self, repo: str, upload_id: str, started: float, path: Path | None) -> None:
        self.repo = repo
        self.id = upload_id
        self.started = started
        self.size = 0
        self.writes = 0
        self._hasher = hashlib.sha256()
        self._path = path
        self._buffer: Blocks | None = None if path else Blocks()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if path else -1

    def restart(self) -> None:
        """Drop everything received so far (GHCR's last-PATCH-wins)."""
        self.size = 0
        self._hasher = hashlib.sha256()
        if self._buffer is not None:
            self._buffer = Blocks()
        else:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._hasher.update(data)
        if self._buffer is not None:
            self._buffer.append(data)
        else:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        self.size += len(data)

    def digest(self, algorithm: str = "sha256") -> str:
        if algorithm == "sha256":
            return f"sha256:{self._hasher.hexdigest()}"
        # Rare: re-hash the content with the requested algorithm.
        hasher = hashlib.new(algorithm)
        if self._buffer is not None:
            for block in self._buffer.blocks:
                hasher.update(block)
        else:
            assert self._path is not None
            with open(self._path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    hasher.update(chunk)
        return f"{algorithm}:{hasher.hexdigest()}"

    def take_buffer(self) -> Blocks:
        assert self._buffer is not None
        buffer, self._buffer = self._buffer, None
        return buffer.seal()

    def take_file(self) -> Path:
        assert self._path is not None
        os.close(self._fd)
        self._fd = -1
        return self._path

    def discard(self) -> None:
        self._buffer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass


__all__ = ["BLOCK_SIZE", "BlobSource", "Blocks", "FileSource", "MemorySource", "Upload"]
