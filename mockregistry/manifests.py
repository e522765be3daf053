"""Manifest media types and the validation a manifest PUT runs (OCI image spec 1.1, "Image
Manifest" and "Image Index"; distribution's schema2 and OCI handlers): what the body records and
which blobs and child manifests must already be in the repository.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .http import Response, error
from .store import ManifestRecord, parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """What PUT learned from a manifest body: its record and the digests it needs present."""

    record: ManifestRecord
    blobs: tuple[str, ...]
    children: tuple[str, ...]


class _Invalid(Exception):
    """A manifest body refused with 400 MANIFEST_INVALID; the argument is the detail."""


def accepted_types(accept: str) -> set[str]:
    return {part.split(";", 1)[0].strip() for part in accept.split(",")}


def check_manifest(body: bytes, content_type: str | None) -> ManifestCheck | Response:
    """Validate a manifest body; a 400 MANIFEST_INVALID response when it is refused."""
    try:
        return _check(body, content_type)
    except _Invalid as exc:
        return error(400, "MANIFEST_INVALID", str(exc))


def _check(body: bytes, content_type: str | None) -> ManifestCheck:
    doc = _document(body)
    media_type = _media_type(doc, content_type)
    blobs: list[str] = []
    children: list[str] = []
    artifact_type = doc.get("artifactType")
    if media_type in IMAGE_TYPES:
        blobs = _image_blobs(doc)
        config = doc["config"]
        if artifact_type is None and isinstance(config, dict):
            artifact_type = config.get("mediaType")
    else:
        children = _index_children(doc)
    subject = _subject(doc)
    annotations = _annotations(doc)
    if not isinstance(artifact_type, str | None):
        raise _Invalid("invalid annotations or artifactType")
    record = ManifestRecord(
        digest="sha256:" + hashlib.sha256(body).hexdigest(),
        media_type=media_type,
        size=len(body),
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )
    return ManifestCheck(record, tuple(dict.fromkeys(blobs)), tuple(dict.fromkeys(children)))


def _document(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # Go's decoder also refuses deep nesting (depth 10000)
        raise _Invalid("manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _Invalid("manifest is not a JSON object")
    return doc


def _media_type(doc: dict[str, Any], content_type: str | None) -> str:
    """The declared Content-Type, which the body's `mediaType` (when present) must match."""
    declared = content_type.split(";", 1)[0].strip() if content_type else ""
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise _Invalid("mediaType is not a string")
    # distribution needs the Content-Type (without it, it tries schema1 and fails).
    if declared not in MANIFEST_TYPES:
        raise _Invalid(f"unsupported manifest media type {declared!r}")
    if body_type and body_type != declared:
        raise _Invalid("mediaType in manifest does not match Content-Type")
    if doc.get("schemaVersion") != 2:
        raise _Invalid("schemaVersion must be 2")
    return declared


def _descriptor_digest(desc: object) -> str | None:
    if not isinstance(desc, dict):
        return None
    value = desc.get("digest")
    return value if isinstance(value, str) and parse_digest(value) else None


def _image_blobs(doc: dict[str, Any]) -> list[str]:
    """The config and layer digests an image manifest needs (foreign layers live elsewhere)."""
    layers = doc.get("layers", [])
    config_digest = _descriptor_digest(doc.get("config"))
    if config_digest is None or not isinstance(layers, list):
        raise _Invalid("config and layers must be descriptors")
    blobs = [config_digest]
    for layer in layers:
        layer_digest = _descriptor_digest(layer)
        if layer_digest is None:
            raise _Invalid("invalid layer descriptor")
        if not layer.get("urls"):
            blobs.append(layer_digest)
    return blobs


def _index_children(doc: dict[str, Any]) -> list[str]:
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise _Invalid("manifests must be a list of descriptors")
    children = []
    for child in manifests:
        child_digest = _descriptor_digest(child)
        if child_digest is None:
            raise _Invalid("invalid manifest descriptor")
        children.append(child_digest)
    return children


def _subject(doc: dict[str, Any]) -> str | None:
    subject = doc.get("subject")
    if subject is None:
        return None
    subject_digest = _descriptor_digest(subject)
    if subject_digest is None:
        raise _Invalid("invalid subject descriptor")
    return subject_digest


def _annotations(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise _Invalid("invalid annotations or artifactType")
    return tuple(sorted((str(k), str(v)) for k, v in annotations.items()))
