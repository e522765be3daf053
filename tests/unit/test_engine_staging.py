"""Multi-target staging: one download per digest, size budget with LRU eviction, failures."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from pathlib import Path

import pytest
import trio
import trio.testing

from ocync.engine.staging import BlobStage
from ocync.errors import TransportError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def desc(data: bytes) -> Descriptor:
    return Descriptor(mt.OCI_LAYER_GZIP, Digest("sha256", hashlib.sha256(data).hexdigest()), len(data))


def writer(data: bytes, log: list[bytes] | None = None):  # type: ignore[no-untyped-def]
    async def download(path: Path) -> None:
        if log is not None:
            log.append(data)
        await trio.sleep(0.01)
        await trio.Path(path).write_bytes(data)

    return download


async def test_one_download_for_concurrent_users(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    stage = BlobStage(tmp_path, size_limit=None)
    data = b"x" * 1000
    downloads: list[bytes] = []
    seen: list[bytes] = []

    async def user() -> None:
        async with stage.use(desc(data), writer(data, downloads)) as path:
            assert path is not None
            seen.append(await trio.Path(path).read_bytes())

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(user)
    assert len(downloads) == 1 and seen == [data] * 4
    stats = stage.statistics()
    assert (stats.staged_blobs, stats.reuses, stats.held_bytes) == (1, 3, 1000)
    stage.cleanup()
    assert not _files(tmp_path)


async def test_budget_evicts_unheld_least_recently_used(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    stage = BlobStage(tmp_path, size_limit=2500)
    a, b, c = b"a" * 1000, b"b" * 1000, b"c" * 1000
    async with stage.use(desc(a), writer(a)) as pa:
        assert pa is not None
        async with stage.use(desc(b), writer(b)) as pb:
            assert pb is not None
            # a and b are held: c cannot fit and is refused (the caller streams instead)
            async with stage.use(desc(c), writer(c)) as pc:
                assert pc is None
        # b released: c evicts it (a is still held)
        async with stage.use(desc(c), writer(c)) as pc:
            assert pc is not None and pa.exists() and not pb.exists()
    stats = stage.statistics()
    assert stats.refused_over_limit == 1 and stats.evicted == 1
    assert stats.held_bytes <= 2500


async def test_failed_download_leaves_nothing(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    stage = BlobStage(tmp_path, size_limit=None)
    d = desc(b"w" * 10)
    results: list[str] = []

    async def failing(path: Path) -> None:
        await trio.Path(path).write_bytes(b"partial")
        await trio.sleep(0.01)
        raise TransportError("reset")

    async def first() -> None:
        try:
            async with stage.use(d, failing):
                pass
        except TransportError:
            results.append("raised")

    async def second() -> None:
        await trio.sleep(0.001)
        async with stage.use(d, failing) as path:
            results.append(str(path))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        nursery.start_soon(second)
    assert sorted(results) == ["None", "raised"]
    assert not _files(tmp_path)


async def test_unwritable_staging_dir_streams_instead(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    await trio.Path(blocker).write_text("x")
    stage = BlobStage(blocker / "stage", size_limit=None)
    data = b"z" * 10
    async with stage.use(desc(data), writer(data)) as path:
        assert path is None
    assert stage.statistics().held_bytes == 0


def _no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["reserving", "downloading"])
async def test_full_staging_disk_streams_with_one_warning(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC while staging (reserving the file, or writing it during the download) is an
    expected condition: the callers stream, one warning for the run, later blobs are not even
    tried, nothing is left behind and no OSError escapes."""
    stage = BlobStage(tmp_path, size_limit=None)
    downloads: list[bytes] = []

    def failing(data: bytes):  # type: ignore[no-untyped-def]
        async def download(path: Path) -> None:
            downloads.append(data)
            await trio.Path(path).write_bytes(data[:3])
            _no_space()

        return download

    if where == "reserving":
        monkeypatch.setattr(os, "posix_fallocate", _no_space)
    a, b = b"a" * 100, b"b" * 100
    seen: list[Path | None] = []

    async def user(data: bytes) -> None:
        async with stage.use(desc(data), failing(data) if where == "downloading" else writer(data, downloads)) as path:
            seen.append(path)

    with caplog.at_level(logging.WARNING, logger="ocync.engine.staging"):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(user, a)
        await user(b)
    assert seen == [None] * 4
    assert downloads == ([] if where == "reserving" else [a])  # b is not even tried
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No space left on device" in warnings[0].getMessage()
    assert stage.statistics().held_bytes == 0
    assert not _files(tmp_path)
