"""--storage DIR: content-addressed files, atomic renames, images survive a restart, and uploads
stream through a temp file (memory stays flat)."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from mockregistry import MockOptions, serve_mock

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_disk_storage_survives_restart(tmp_path: Path) -> None:
    layer = b"layer bytes " * 10_000
    config = b'{"architecture":"amd64"}'
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer),
                    "size": len(layer)}],
    }).encode()
    options = MockOptions(storage_dir=tmp_path)
    async with serve_mock(options) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        post = await client.post("/v2/keep/me/blobs/uploads/")
        patch = await client.patch(post.headers["location"], content=layer)
        put = await client.put(patch.headers["location"] + f"&digest={sha(layer)}")
        assert put.status_code == 201
        assert (await client.post(f"/v2/keep/me/blobs/uploads/?digest={sha(config)}", content=config)
                ).status_code == 201
        assert (await client.put("/v2/keep/me/manifests/v1", content=manifest,
                                 headers={"Content-Type": OCI_MANIFEST})).status_code == 201
        # An upload left open is not carried across a restart.
        await client.post("/v2/keep/me/blobs/uploads/")
    blob_file = tmp_path / "blobs" / "sha256" / sha(layer).split(":")[1]
    assert blob_file.read_bytes() == layer
    assert not list((tmp_path / "blobs" / "sha256").glob("*.tmp"))

    async with serve_mock(options) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        assert not list((tmp_path / "uploads").iterdir())
        got = await client.get("/v2/keep/me/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == manifest
        assert (await client.get(f"/v2/keep/me/blobs/{sha(layer)}")).content == layer
        assert (await client.get("/v2/keep/me/tags/list")).json() == {"name": "keep/me", "tags": ["v1"]}
        stats = mock.stats()
        assert (stats["blobs"], stats["blob_bytes"]) == (2, len(layer) + len(config))
        # Deleting survives a restart too.
        assert (await client.delete(f"/v2/keep/me/manifests/{sha(manifest)}")).status_code == 202
    async with serve_mock(options) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        assert (await client.get("/v2/keep/me/manifests/v1", headers={"Accept": OCI_MANIFEST})).status_code == 404


async def test_disk_upload_memory_stays_flat(tmp_path: Path) -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    count = 48
    hasher = hashlib.sha256()
    for _ in range(count):
        hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    async with serve_mock(MockOptions(storage_dir=tmp_path)) as mock, \
            httpx.AsyncClient(base_url=mock.url, timeout=30) as client:
        tracemalloc.start()
        try:
            resp = await client.post(f"/v2/big/blobs/uploads/?digest={digest}", content=body())
            assert resp.status_code == 201
            received = 0
            async with client.stream("GET", f"/v2/big/blobs/{digest}") as stream:
                async for part in stream.aiter_raw():
                    received += len(part)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert received == count * len(chunk)
        assert peak < 16 * len(chunk), f"peak {peak / 2**20:.1f} MiB for a {count} MiB blob"
        assert mock.stats()["blob_bytes"] == count * len(chunk)


async def test_memory_upload_holds_the_blob_once() -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    count = 32
    digest = "sha256:" + hashlib.sha256(chunk * count).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    async with serve_mock(MockOptions()) as mock, httpx.AsyncClient(base_url=mock.url, timeout=30) as client:
        tracemalloc.start()
        try:
            post = await client.post("/v2/mem/blobs/uploads/")
            patch = await client.patch(post.headers["location"], content=body())
            put = await client.put(patch.headers["location"] + f"&digest={digest}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert put.status_code == 201
        size = count * len(chunk)
        assert peak < size * 1.25, f"peak {peak / 2**20:.1f} MiB for a {count} MiB blob held in memory"
