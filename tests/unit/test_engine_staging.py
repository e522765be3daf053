"""Multi-target staging: one download per digest, size budget, failures, cleanup."""

from __future__ import annotations

import hashlib
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
    return Descriptor(
        mt.OCI_LAYER_GZIP, Digest("sha256", hashlib.sha256(data).hexdigest()), len(data)
    )


async def test_one_download_for_concurrent_users(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    stage = BlobStage(tmp_path, size_limit=None)
    data = b"x" * 1000
    downloads = 0

    async def download(path: Path) -> None:
        nonlocal downloads
        downloads += 1
        await trio.sleep(0.01)
        await trio.Path(path).write_bytes(data)

    paths: list[Path | None] = []

    async def user() -> None:
        paths.append(await stage.obtain(desc(data), download))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(user)
    assert downloads == 1
    assert len({p for p in paths}) == 1 and paths[0] is not None and paths[0].read_bytes() == data
    assert stage.statistics() == {
        "staged_blobs": 1,
        "staged_bytes": 1000,
        "reuses": 3,
        "refused_over_limit": 0,
    }
    stage.cleanup()
    assert not paths[0].exists()


async def test_size_limit_refuses(tmp_path: Path) -> None:
    stage = BlobStage(tmp_path, size_limit=1500)

    async def download(path: Path) -> None:
        await trio.Path(path).write_bytes(b"y" * 1000)

    assert await stage.obtain(desc(b"y" * 1000), download) is not None
    assert await stage.obtain(desc(b"z" * 1000), download) is None  # would exceed 1500
    assert stage.statistics()["refused_over_limit"] == 1


async def test_failed_download_leaves_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    stage = BlobStage(tmp_path, size_limit=None)
    d = desc(b"w" * 10)
    results: list[Path | None | str] = []

    async def failing(path: Path) -> None:
        await trio.Path(path).write_bytes(b"partial")
        await trio.sleep(0.01)
        raise TransportError("reset")

    async def first() -> None:
        try:
            await stage.obtain(d, failing)
        except TransportError:
            results.append("raised")

    async def second() -> None:
        await trio.sleep(0.001)
        results.append(await stage.obtain(d, failing))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        nursery.start_soon(second)
    assert sorted(map(str, results)) == ["None", "raised"]
    assert not _files(tmp_path)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)
