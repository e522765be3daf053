"""LayoutEndpoint on a temporary directory, without sockets: what it refuses, what it counts,
and that concurrent tag pushes share index.json rewrites."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from ocync.engine.layoutendpoint import LayoutEndpoint
from ocync.errors import IntegrityError, OcyncError, RegistryError
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, Manifest, parse_manifest

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes" * 100


def image(config: bytes = CONFIG, layer: bytes = LAYER) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": str(Digest.of(config)), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": str(Digest.of(layer)), "size": len(layer)}],
    }
    return parse_manifest(json.dumps(doc).encode())


class BytesSource:
    """A BlobSource serving blobs from memory (``name`` for messages)."""

    name = "memory"

    def __init__(self, *blobs: bytes) -> None:
        self.blobs = {str(Digest.of(b)): b for b in blobs}

    def open_blob(self, repo: str, desc: Descriptor):  # type: ignore[no-untyped-def]
        data = self.blobs[str(desc.digest)]

        class _Open:
            async def __aenter__(self) -> AsyncIterator[bytes]:
                async def chunks() -> AsyncIterator[bytes]:
                    yield data

                return chunks()

            async def __aexit__(self, *exc: object) -> None:
                return None

        return _Open()


async def opened(root: Path) -> LayoutEndpoint:
    endpoint = LayoutEndpoint("carry", root, writable=True)
    await endpoint.open()
    return endpoint


async def place(endpoint: LayoutEndpoint, manifest: Manifest, source: BytesSource) -> None:
    for desc in manifest.blobs():
        await endpoint.copy_blob(source, "src", "app", desc, None)


async def test_a_manifest_naming_missing_blobs_is_refused_like_a_registry(tmp_path: Path) -> None:
    endpoint = await opened(tmp_path / "l")
    try:
        with pytest.raises(RegistryError) as info:
            await endpoint.put_manifest("app", "v1", image())
        assert info.value.codes == ("MANIFEST_BLOB_UNKNOWN",) and info.value.status == 400
        assert json.loads((tmp_path / "l" / "index.json").read_bytes())["manifests"] == []
        with pytest.raises(OcyncError, match="no mounts"):
            await endpoint.mount_blob("app", image().blobs()[0], "other")
        assert endpoint.request_counts() == {} and endpoint.throttled_count() == 0
    finally:
        await endpoint.aclose()


async def test_a_blob_that_does_not_match_its_digest_never_lands(tmp_path: Path) -> None:
    endpoint = await opened(tmp_path / "l")
    source = BytesSource(CONFIG)
    wrong = Descriptor("application/octet-stream", Digest.of(b"something else"), len(CONFIG))
    source.blobs[str(wrong.digest)] = CONFIG
    try:
        with pytest.raises(IntegrityError):
            await endpoint.copy_blob(source, "src", "app", wrong, None)
        assert not list((tmp_path / "l" / "blobs").glob("*/*"))
        assert not list((tmp_path / "l" / ".ocync-tmp").iterdir())
    finally:
        await endpoint.aclose()


async def test_concurrent_tag_pushes_share_index_rewrites_and_a_rerun_writes_nothing(tmp_path: Path) -> None:
    manifests = [image(layer=LAYER + bytes([i])) for i in range(8)]
    source = BytesSource(CONFIG, *(LAYER + bytes([i]) for i in range(8)))
    endpoint = await opened(tmp_path / "l")
    write_file = endpoint.store.write_file

    def slow_first_write(name: str, data: bytes) -> None:
        # the first rewrite (of the first tag) lasts until every push is waiting for one
        deadline = time.monotonic() + 30
        while endpoint.index_writes == 0 and len(endpoint._index.entries) < len(manifests):
            assert time.monotonic() < deadline, "the other pushes never arrived"
            time.sleep(0.001)
        write_file(name, data)

    endpoint.store.write_file = slow_first_write  # type: ignore[method-assign]
    try:
        for m in manifests:
            await place(endpoint, m, source)
        async with trio.open_nursery() as nursery:
            for i, m in enumerate(manifests):
                nursery.start_soon(endpoint.put_manifest, "app", f"v{i}", m)
    finally:
        await endpoint.aclose()
    assert endpoint.blobs_written == 9 and endpoint.blobs_present == 7  # the shared config
    assert endpoint.index_writes == 2  # the first tag's, then one for the seven that waited
    assert sorted(await endpoint.list_tags("app")) == sorted(f"v{i}" for i in range(8))
    again = await opened(tmp_path / "l")
    try:
        for i, m in enumerate(manifests):
            await place(again, m, source)
            await again.put_manifest("app", f"v{i}", m)
        assert (again.blobs_written, again.manifests_written, again.index_writes) == (0, 0, 0)
        assert await again.head_manifest("app", "v3") == str(manifests[3].digest)
        assert (await again.get_manifest("app", "v3")).raw == manifests[3].raw
    finally:
        await again.aclose()
