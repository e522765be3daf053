"""The corpus planner: from a `CorpusSpec` (a seed and sizes) to every blob and manifest, byte for
byte, with what a faithful copy must hold. Pure and deterministic: no I/O, no clock, no global
randomness, so the same spec always yields the same digests (stress/corpus/push.py sends them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# OCI image-spec 1.1 and Docker image manifest v2 schema 2 media types.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))

# Referrer artifact types as cosign and syft publish them.
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"
REFERRER_TYPES = (SIGNATURE_TYPE, SBOM_TYPE)

# A fixed timestamp keeps configs (and so every digest) reproducible.
CREATED = "2024-01-01T00:00:00Z"
EMPTY_JSON = b"{}"

IndexFormat = Literal["oci", "docker"]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact_json(obj: object) -> bytes:
    """JSON without whitespace: the bytes (and so the digest) a manifest is pushed as."""
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class CorpusSpec:
    """What to generate. Every field changes the digests deterministically, nothing else does."""

    seed: int = 0
    repositories: int = 2
    namespace: str = "corpus"
    tags_per_repo: int = 2
    # One platform -> single manifests; several -> an index (OCI) or manifest list (Docker) per tag.
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")
    index_format: IndexFormat = "oci"
    # The first `single_platform_tags` tags of each repo are plain manifests for platforms[0].
    single_platform_tags: int = 0
    layers_per_image: int = 3
    layer_size: tuple[int, int] = (1024, 16 * 1024)
    # The first N layers of every image of a platform are the same blobs in every repo and tag.
    shared_base_layers: int = 1
    # Artifacts (alternately signature, SBOM) whose `subject` is each tag's top manifest.
    referrers_per_image: int = 0

    def __post_init__(self) -> None:
        if self.repositories < 1 or self.tags_per_repo < 1 or not self.platforms:
            raise ValueError("a corpus needs at least one repository, tag and platform")
        if self.layers_per_image < 1 or not 0 <= self.shared_base_layers <= self.layers_per_image:
            raise ValueError("shared_base_layers must be between 0 and layers_per_image")
        lo, hi = self.layer_size
        if not 0 < lo <= hi:
            raise ValueError("layer_size must be (min, max) with 0 < min <= max")
        if self.index_format not in ("oci", "docker"):
            raise ValueError("index_format must be 'oci' or 'docker'")


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str
    media_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index, byte for byte, with what it references."""

    digest: str
    media_type: str
    data: bytes = field(repr=False)
    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    platform: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type is not None:
            desc["artifactType"] = self.artifact_type
        if self.platform is not None:
            os_name, _, arch = self.platform.partition("/")
            arch, _, variant = arch.partition("/")
            plat = {"architecture": arch, "os": os_name}
            if variant:
                plat["variant"] = variant
            desc["platform"] = plat
        return desc


@dataclass(frozen=True, slots=True)
class Image:
    """One tag: its top manifest, every manifest under it, every blob, and its referrers."""

    repo: str
    tag: str
    digest: str
    manifests: tuple[str, ...]  # children first, the top manifest last
    blobs: tuple[str, ...]
    referrers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Corpus:
    """The plan of a corpus: what `push_corpus` sends, and what a faithful copy must hold."""

    spec: CorpusSpec
    blobs: Mapping[str, Blob]
    manifests: Mapping[str, Manifest]
    images: tuple[Image, ...]

    @property
    def repos(self) -> dict[str, dict[str, str]]:
        """repo -> tag -> top manifest digest."""
        out: dict[str, dict[str, str]] = {}
        for image in self.images:
            out.setdefault(image.repo, {})[image.tag] = image.digest
        return out

    def repo_blobs(self, repo: str) -> set[str]:
        return {d for image in self.images if image.repo == repo for d in image.blobs}

    def repo_manifests(self, repo: str) -> set[str]:
        return {
            d
            for image in self.images
            if image.repo == repo
            for d in image.manifests + image.referrers
        }

    def referrers(self, repo: str) -> dict[str, tuple[str, ...]]:
        """subject digest -> referrer manifest digests, for one repository."""
        return {
            image.digest: image.referrers
            for image in self.images
            if image.repo == repo and image.referrers
        }

    @property
    def blob_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs.values())

    def summary(self) -> dict[str, int]:
        return {
            "repositories": len(self.repos),
            "tags": len(self.images),
            "manifests": len(self.manifests),
            "blobs": len(self.blobs),
            "blob_bytes": self.blob_bytes,
            "referrers": sum(len(image.referrers) for image in self.images),
        }

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description: repo -> tag -> digest, plus the blobs (digest -> size)."""
        return {
            "repos": self.repos,
            "blobs": {d: b.size for d, b in sorted(self.blobs.items())},
            "referrers": {repo: self.referrers(repo) for repo in self.repos},
        }


class _Planner:
    def __init__(self, spec: CorpusSpec) -> None:
        self.spec = spec
        self.blobs: dict[str, Blob] = {}
        self.manifests: dict[str, Manifest] = {}
        docker = spec.index_format == "docker"
        self.manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        self.index_type = DOCKER_LIST if docker else OCI_INDEX
        self.config_type = DOCKER_CONFIG if docker else OCI_CONFIG
        self.layer_type = DOCKER_LAYER if docker else OCI_LAYER

    def _rng(self, key: str) -> random.Random:
        # str seeds are hashed with SHA-512 by random (version 2): stable across runs and hosts.
        return random.Random(f"ocync-corpus/{self.spec.seed}/{key}")

    def _blob(self, media_type: str, data: bytes) -> Blob:
        blob = Blob(sha256_digest(data), media_type, data)
        self.blobs.setdefault(blob.digest, blob)
        return blob

    def _manifest(self, media_type: str, obj: dict[str, Any], **kw: Any) -> Manifest:
        data = compact_json(obj)
        manifest = Manifest(sha256_digest(data), media_type, data, **kw)
        self.manifests.setdefault(manifest.digest, manifest)
        return manifest

    def _layer(self, key: str) -> tuple[Blob, str]:
        """A layer blob and its diff_id. The bytes are a real gzip stream (stored, level 0):
        clients such as skopeo sniff the magic number and would recompress anything else,
        changing the digests."""
        rng = self._rng(key)
        lo, hi = self.spec.layer_size
        size = rng.randint(lo, hi)
        header = f"ocync synthetic layer {key}\n".encode()
        raw = (header + rng.randbytes(max(0, size - len(header))))[:size]
        data = gzip.compress(raw, compresslevel=0, mtime=0)
        return self._blob(self.layer_type, data), sha256_digest(raw)

    def _image_manifest(self, image_key: str, platform: str) -> Manifest:
        spec = self.spec
        layers, diff_ids = [], []
        for i in range(spec.layers_per_image):
            shared = i < spec.shared_base_layers
            layer, diff_id = self._layer(
                f"base/{platform}/{i}" if shared else f"{image_key}/{platform}/{i}"
            )
            layers.append(layer)
            diff_ids.append(diff_id)
        os_name, _, arch = platform.partition("/")
        arch, _, variant = arch.partition("/")
        config_obj: dict[str, Any] = {
            "architecture": arch,
            "os": os_name,
            "created": CREATED,
            "config": {"Labels": {"org.opencontainers.image.ref.name": image_key}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if variant:
            config_obj["variant"] = variant
        config = self._blob(self.config_type, compact_json(config_obj))
        obj = {
            "schemaVersion": 2,
            "mediaType": self.manifest_type,
            "config": {
                "mediaType": config.media_type,
                "digest": config.digest,
                "size": config.size,
            },
            "layers": [
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
        return self._manifest(
            self.manifest_type,
            obj,
            blobs=(config.digest, *(layer.digest for layer in layers)),
            platform=platform,
        )

    def _referrer(self, image_key: str, n: int, subject: Manifest) -> Manifest:
        artifact_type = REFERRER_TYPES[n % len(REFERRER_TYPES)]
        payload = compact_json(
            {"kind": artifact_type, "image": image_key, "subject": subject.digest, "n": n}
        )
        layer = self._blob(artifact_type, payload)
        empty = self._blob(OCI_EMPTY, EMPTY_JSON)
        obj = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty.digest, "size": empty.size},
            "layers": [{"mediaType": artifact_type, "digest": layer.digest, "size": layer.size}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
            "annotations": {"org.opencontainers.image.created": CREATED},
        }
        return self._manifest(
            OCI_MANIFEST,
            obj,
            blobs=(empty.digest, layer.digest),
            subject=subject.digest,
            artifact_type=artifact_type,
        )

    def plan(self) -> Corpus:
        spec = self.spec
        images: list[Image] = []
        for r in range(spec.repositories):
            repo = f"{spec.namespace}/repo{r}" if spec.namespace else f"repo{r}"
            for t in range(spec.tags_per_repo):
                tag = f"v{t}.0"
                key = f"{repo}:{tag}"
                single = t < spec.single_platform_tags or len(spec.platforms) == 1
                platforms = spec.platforms[:1] if single else spec.platforms
                children = [self._image_manifest(key, p) for p in platforms]
                if single:
                    top = children[0]
                    manifests: tuple[str, ...] = (top.digest,)
                else:
                    obj = {
                        "schemaVersion": 2,
                        "mediaType": self.index_type,
                        "manifests": [child.descriptor() for child in children],
                    }
                    top = self._manifest(
                        self.index_type, obj, children=tuple(c.digest for c in children)
                    )
                    manifests = (*(c.digest for c in children), top.digest)
                blobs = tuple(dict.fromkeys(d for c in children for d in c.blobs))
                refs = [self._referrer(key, n, top) for n in range(spec.referrers_per_image)]
                ref_blobs = tuple(d for ref in refs for d in ref.blobs if d not in blobs)
                images.append(
                    Image(
                        repo=repo,
                        tag=tag,
                        digest=top.digest,
                        manifests=manifests,
                        blobs=blobs + tuple(dict.fromkeys(ref_blobs)),
                        referrers=tuple(ref.digest for ref in refs),
                    )
                )
        return Corpus(spec, dict(self.blobs), dict(self.manifests), tuple(images))


def build_corpus(spec: CorpusSpec) -> Corpus:
    """Plan a corpus (pure: no I/O). The same spec always gives the same digests."""
    return _Planner(spec).plan()


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: `<alg>-<hex>` for registries without the referrers API."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}-{hexpart}"[:128]
