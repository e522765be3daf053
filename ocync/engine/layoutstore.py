"""The files of an OCI image layout on disk: blocking operations, run in worker threads by
:mod:`ocync.engine.layoutendpoint`. OSError is mapped here, once, to our errors.

Crash safety: every file (blob, ``index.json``, ``oci-layout``) is written to a temporary
file inside the layout (same file system), fsynced, renamed into place, and its directory
fsynced, so a killed run leaves either the old file or the new one, never a partial one.
A writer holds an exclusive ``flock`` on the layout's lock file; a second writer is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ocync.errors import ConfigError, IntegrityError, LayoutError, ManifestError
from ocync.oci.digest import Digest, DigestHasher
from ocync.oci.layout import (
    INDEX_FILE,
    LAYOUT_FILE,
    LOCK_FILE,
    TEMP_DIR,
    LayoutIndex,
    blob_path,
    check_layout_marker,
    layout_marker,
    parse_layout_index,
)
from ocync.oci.manifest import MAX_MANIFEST_SIZE

CHUNK = 1024 * 1024  # bytes per read of a blob file


@contextlib.contextmanager
def layout_io(what: str) -> Iterator[None]:
    """OSError -> LayoutError naming ``what`` (the one place file errors are mapped)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LayoutError(f"{what}: {reason}") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LayoutStore:
    """One layout directory: reading always; writing after :meth:`open_writer`."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"<LayoutStore {self.root} {'writing' if self._lock_fd is not None else 'reading'}>"

    # ---- opening ---------------------------------------------------------------------------
    def check_readable(self) -> None:
        """ConfigError naming the path unless it is an OCI image layout directory."""
        if not self.root.exists():
            raise ConfigError(f"OCI layout {self.root}: no such directory")
        if not self.root.is_dir():
            raise ConfigError(f"OCI layout {self.root}: not a directory")
        marker = self.root / LAYOUT_FILE
        if not marker.is_file():
            raise ConfigError(f"OCI layout {self.root}: not an OCI image layout (no {LAYOUT_FILE} file)")
        with layout_io(f"OCI layout {self.root}"):
            raw = marker.read_bytes()
        try:
            check_layout_marker(raw, f"OCI layout {self.root}")
        except ManifestError as exc:
            raise ConfigError(str(exc)) from None

    def open_writer(self) -> None:
        """Create the layout if needed, take its write lock, remove a killed run's leftovers."""
        where = f"OCI layout {self.root}"
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"{where}: not a directory")
        if self.root.is_dir() and not (self.root / LAYOUT_FILE).exists():
            if any(p.name not in (TEMP_DIR, LOCK_FILE) for p in self.root.iterdir()):
                raise ConfigError(
                    f"{where}: not an OCI image layout (no {LAYOUT_FILE} file) and not empty"
                )
        with layout_io(where):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LayoutError(
                    f"{where}: another ocync is writing to it (lock {self.root / LOCK_FILE} is held)"
                ) from None
            self._lock_fd = fd
        try:
            self._prepare_for_writing(where)
        except BaseException:
            self.close()
            raise

    def _prepare_for_writing(self, where: str) -> None:
        with layout_io(where):
            temp = self.root / TEMP_DIR
            if temp.is_dir():
                for leftover in temp.iterdir():  # a killed run's partial files
                    leftover.unlink()
            temp.mkdir(exist_ok=True)
            if not (self.root / LAYOUT_FILE).exists():
                self.write_file(LAYOUT_FILE, layout_marker())
            else:
                self.check_readable()
            if not (self.root / INDEX_FILE).exists():
                self.write_file(INDEX_FILE, LayoutIndex().to_bytes())

    def close(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            (self.root / TEMP_DIR).rmdir()  # only when empty
        os.close(self._lock_fd)  # releases the flock
        self._lock_fd = None

    # ---- reading ---------------------------------------------------------------------------
    def read_index(self) -> LayoutIndex:
        where = f"OCI layout {self.root}"
        with layout_io(where):
            raw = (self.root / INDEX_FILE).read_bytes()
        return parse_layout_index(raw, where)

    def blob_file(self, digest: Digest) -> Path:
        return self.root / blob_path(digest)

    def has_blob(self, digest: Digest, size: int | None) -> bool:
        """The blob file exists (with ``size`` bytes, when given)."""
        try:
            st = self.blob_file(digest).stat()
        except OSError:
            return False
        return size is None or st.st_size == size

    def read_manifest(self, digest: Digest) -> bytes | None:
        """A manifest's bytes, verified against ``digest``; None when absent."""
        path = self.blob_file(digest)
        with layout_io(f"OCI layout {self.root}: {digest}"):
            try:
                with path.open("rb") as fh:
                    raw = fh.read(MAX_MANIFEST_SIZE + 1)
            except FileNotFoundError:
                return None
        if Digest.of(raw, digest.algorithm) != digest:
            raise IntegrityError(f"OCI layout {self.root}: {blob_path(digest)} does not hash to its name")
        return raw

    # ---- writing ---------------------------------------------------------------------------
    def temp_path(self, hint: str) -> Path:
        return self.root / TEMP_DIR / f"{hint[:16]}.{secrets.token_hex(6)}"

    def write_file(self, name: str, data: bytes) -> None:
        """``name`` (relative to the root) replaced atomically by ``data``."""
        tmp = self.temp_path(Path(name).name)
        with layout_io(f"OCI layout {self.root}: writing {name}"):
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            final = self.root / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)

    def commit_blob(self, tmp: Path, digest: Digest) -> None:
        """Rename the fsynced, verified temporary file ``tmp`` into ``blobs/<alg>/<hex>``."""
        final = self.blob_file(digest)
        with layout_io(f"OCI layout {self.root}: writing {blob_path(digest)}"):
            if not final.parent.is_dir():
                final.parent.mkdir(parents=True, exist_ok=True)
                fsync_dir(final.parent.parent)
                fsync_dir(self.root)
            os.replace(tmp, final)
            fsync_dir(final.parent)

    def write_blob_bytes(self, digest: Digest, data: bytes) -> None:
        hasher = DigestHasher(digest.algorithm)
        hasher.update(data)
        hasher.verify(digest, len(data), f"blob {digest}")
        tmp = self.temp_path(digest.encoded)
        with layout_io(f"OCI layout {self.root}: writing {blob_path(digest)}"):
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        self.commit_blob(tmp, digest)

    def copy_blob_file(self, source: Path, digest: Digest, size: int) -> None:
        """A staged file copied in: hashed as it is written, fsynced, renamed into place."""
        tmp = self.temp_path(digest.encoded)
        hasher = DigestHasher(digest.algorithm)
        try:
            with layout_io(f"OCI layout {self.root}: writing {blob_path(digest)}"):
                with source.open("rb") as src, tmp.open("wb") as dst:
                    while chunk := src.read(CHUNK):
                        hasher.update(chunk)
                        dst.write(chunk)
                    dst.flush()
                    os.fsync(dst.fileno())
            hasher.verify(digest, size, f"staged blob {digest}")
        except BaseException:
            self.discard(tmp)
            raise
        self.commit_blob(tmp, digest)

    def discard(self, tmp: Path) -> None:
        with contextlib.suppress(OSError):
            tmp.unlink()


__all__ = ["CHUNK", "LayoutStore", "fsync_dir", "layout_io"]
