"""``oci-archive``: a tar of an OCI image layout (skopeo's ``oci-archive:FILE.tar``).

As a source the tar is extracted into a temporary directory (members checked by tarfile's
``data`` filter: no absolute paths, links out of the tree or devices) and read as a layout,
every blob verified as it streams. As a target the layout is built in a directory beside the
tar (the old tar's content first), and the tar is written to a temporary file, fsynced and
renamed over the old one when the run ends, so a reader sees the old archive or the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from ocync.engine.layoutendpoint import LayoutEndpoint
from ocync.engine.layoutstore import fsync_dir, layout_io
from ocync.errors import ConfigError, LayoutError
from ocync.oci.layout import LOCK_FILE, TEMP_DIR

_WORK_SUFFIX = ".ocync-work"  # FILE.tar.ocync-work/: the layout being built
_PART_SUFFIX = ".ocync-part"  # FILE.tar.ocync-part: the tar being written


def extract(archive: Path, into: Path) -> None:
    """The archive's members into ``into`` (ConfigError when it is not a readable tar);
    nothing when there is no archive yet."""
    if not archive.exists():
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
    except tarfile.TarError as exc:
        lines = str(exc).splitlines()  # "r:*" lists every compression it tried, one a line
        reason = lines[0] if len(lines) == 1 else "no tar, gzip, bzip2 or xz data"
        raise ConfigError(f"OCI archive {archive}: not a tar archive ({reason})") from None
    except OSError as exc:
        raise LayoutError(f"OCI archive {archive}: {exc.strerror or exc}") from exc


def write_archive(layout: Path, archive: Path, changed: bool = True) -> None:
    """``layout``'s files (not ocync's lock and temporary files) as ``archive``, atomically;
    an archive already there is left alone unless ``changed``."""
    if not changed and archive.exists():
        return
    part = archive.with_name(archive.name + _PART_SUFFIX)
    with layout_io(f"OCI archive {archive}"):
        with part.open("wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(layout.rglob("*")):
                    rel = path.relative_to(layout)
                    if rel.parts[0] in (TEMP_DIR, LOCK_FILE):
                        continue
                    tar.add(path, arcname=str(rel), recursive=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, archive)
        fsync_dir(archive.parent)


class ArchiveLock:
    """An exclusive flock on ``FILE.tar.ocync-lock`` beside the archive (one writer)."""

    def __init__(self, archive: Path) -> None:
        self.path = archive.with_name(archive.name + ".ocync-lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        with layout_io(f"OCI archive {self.path}"):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LayoutError(f"OCI archive {self.path.with_suffix('')}: another ocync is writing it "
                              f"(lock {self.path} is held)") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _check_archive_path(archive: Path, *, must_exist: bool) -> None:
    if archive.is_dir():
        raise ConfigError(f"OCI archive {archive}: a directory, not a tar file (type: oci-layout?)")
    if must_exist and not archive.exists():
        raise ConfigError(f"OCI archive {archive}: no such file")
    if not archive.parent.is_dir():
        raise ConfigError(f"OCI archive {archive}: no such directory {archive.parent}")


@contextlib.asynccontextmanager
async def open_archive_endpoint(
    name: str, archive: Path, *, target: bool, dry_run: bool = False
) -> AsyncIterator[LayoutEndpoint]:
    assert archive.is_absolute(), archive  # config and CLI resolve it
    key = f"oci-archive:{archive}"
    if not target or dry_run:
        _check_archive_path(archive, must_exist=not target)
        with tempfile.TemporaryDirectory(prefix="ocync-archive-") as tmp:
            root = Path(tmp) / "layout"
            await trio.to_thread.run_sync(extract, archive, root)
            endpoint = LayoutEndpoint(name, root, writable=False, key=key, missing_ok=target)
            await endpoint.open()
            yield endpoint
        return
    _check_archive_path(archive, must_exist=False)
    lock = ArchiveLock(archive)
    await trio.to_thread.run_sync(lock.acquire)
    work = archive.with_name(archive.name + _WORK_SUFFIX)
    try:
        # a killed run's work directory: its content may be partial, start from the tar again
        await trio.to_thread.run_sync(shutil.rmtree, work, True)
        await trio.to_thread.run_sync(extract, archive, work)
        endpoint = LayoutEndpoint(name, work, writable=True, key=key)
        opened = False
        try:
            await endpoint.open()
            opened = True
            yield endpoint
        finally:
            await endpoint.aclose()
            changed = bool(endpoint.index_writes or endpoint.blobs_written or endpoint.manifests_written)
            if opened:  # index.json names only what is present: the tar is sound, even after an interrupt
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(write_archive, work, archive, changed)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(shutil.rmtree, work, True)
        lock.release()


__all__ = ["ArchiveLock", "extract", "open_archive_endpoint", "write_archive"]
