"""Media types of manifests, indexes and blobs (OCI image-spec media-types.md, Docker
image manifest v2 schema 2) and the Accept list sent with every manifest request."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"  # image-spec 1.1-rc only

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST, OCI_ARTIFACT_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_MANIFEST_TYPES

# Sent as Accept on manifest GET/HEAD: without it Docker Hub and others fall back to
# schema 1 or refuse OCI indexes (distribution-spec "Pulling manifests").
MANIFEST_ACCEPT: tuple[str, ...] = (
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
    OCI_ARTIFACT_MANIFEST,
)
MANIFEST_ACCEPT_HEADER = ", ".join(MANIFEST_ACCEPT)


def is_index(media_type: str) -> bool:
    return base_type(media_type) in INDEX_TYPES


def is_manifest_type(media_type: str) -> bool:
    return base_type(media_type) in MANIFEST_TYPES


def base_type(media_type: str) -> str:
    """``application/x; charset=utf-8`` -> ``application/x``."""
    return media_type.split(";", 1)[0].strip().lower()


__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_ACCEPT_HEADER",
    "MANIFEST_TYPES",
    "OCI_ARTIFACT_MANIFEST",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "base_type",
    "is_index",
    "is_manifest_type",
]
