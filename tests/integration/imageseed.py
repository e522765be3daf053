"""Build small random OCI images in memory and push them with ocync's own client (tests only)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor
from ocync.registry.blobs import push_blob
from ocync.registry.client import RegistryClient


@dataclass
class SeedImage:
    """An image (or index) whose bytes are all in memory."""

    tag: str
    manifest: bytes
    media_type: str
    blobs: dict[Digest, bytes] = field(default_factory=dict)
    children: list[SeedImage] = field(default_factory=list)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)

    def all_blobs(self) -> dict[Digest, bytes]:
        out = dict(self.blobs)
        for child in self.children:
            out.update(child.all_blobs())
        return out


def _descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


def make_image(rng: random.Random, tag: str, *, layers: int = 2, layer_size: int = 4096,
               arch: str = "amd64") -> SeedImage:
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"},
                         "salt": rng.random()}).encode()
    layer_data = [rng.randbytes(layer_size + rng.randrange(0, 512)) for _ in range(layers)]
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": _descriptor(mt.OCI_CONFIG, config),
        "layers": [_descriptor(mt.OCI_LAYER_GZIP, d) for d in layer_data],
    }
    raw = json.dumps(manifest, indent=2).encode()
    blobs = {Digest.of(config): config}
    blobs.update({Digest.of(d): d for d in layer_data})
    return SeedImage(tag, raw, mt.OCI_MANIFEST, blobs)


def make_index(rng: random.Random, tag: str, arches: tuple[str, ...] = ("amd64", "arm64"),
               **kw: int) -> SeedImage:
    children = [make_image(rng, f"{tag}-{a}", arch=a, **kw) for a in arches]
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            _descriptor(mt.OCI_MANIFEST, c.manifest, platform={"os": "linux", "architecture": a})
            for c, a in zip(children, arches, strict=True)
        ],
    }
    raw = json.dumps(index, indent=2).encode()
    return SeedImage(tag, raw, mt.OCI_INDEX, {}, children)


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def push_image(client: RegistryClient, repository: str, image: SeedImage) -> Digest:
    """Push blobs, then children, then the manifest under its tag."""
    for digest, data in image.blobs.items():
        if await client.head_blob(repository, digest) is None:
            desc = Descriptor(mt.OCI_LAYER, digest, len(data))
            await push_blob(client, repository, desc, lambda data=data: _chunks(data))
    for child in image.children:
        await push_image_by_digest(client, repository, child)
    return await client.put_manifest(repository, image.tag, image.manifest, image.media_type)


async def push_image_by_digest(client: RegistryClient, repository: str, image: SeedImage) -> Digest:
    for digest, data in image.blobs.items():
        if await client.head_blob(repository, digest) is None:
            desc = Descriptor(mt.OCI_LAYER, digest, len(data))
            await push_blob(client, repository, desc, lambda data=data: _chunks(data))
    return await client.put_manifest(repository, str(image.digest), image.manifest, image.media_type)
