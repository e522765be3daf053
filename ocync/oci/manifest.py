"""Manifests, indexes and descriptors (OCI image-spec manifest.md, image-index.md,
descriptor.md; Docker schema 2). The raw bytes are kept bit-for-bit: the digest is over
them, so we never re-serialise a manifest we copy. Parsing lists the blobs and child
manifests a manifest references, its ``subject`` and ``artifactType``; descriptor platforms
are :class:`ocync.oci.platform.Platform` (the one platform type; trimming lives there)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ocync.errors import IntegrityError, ManifestError, ReferenceError_
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.platform import Platform

# Manifests over 4 MiB are refused: distribution's default manifest payload limit and
# the limit the OCI distribution-spec recommends registries accept at least.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor (image-spec descriptor.md)."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None
    artifact_type: str | None = None

    @property
    def is_foreign(self) -> bool:
        """Docker foreign/non-distributable layers live elsewhere (``urls``)."""
        return self.media_type == mt.DOCKER_FOREIGN_LAYER or "nondistributable" in self.media_type

    @property
    def is_manifest(self) -> bool:
        return mt.is_manifest_type(self.media_type)

    def annotation(self, key: str) -> str | None:
        for name, value in self.annotations:
            if name == key:
                return value
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform is not None:
            p: dict[str, Any] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.os_version:
                p["os.version"] = self.platform.os_version
            if self.platform.os_features:
                p["os.features"] = list(self.platform.os_features)
            if self.platform.variant:
                p["variant"] = self.platform.variant
            out["platform"] = p
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index: raw bytes (bit-for-bit), media type, digest and parsed fields."""

    raw: bytes
    media_type: str
    digest: Digest
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.media_type)

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw), artifact_type=self.artifact_type)

    def blobs(self) -> tuple[Descriptor, ...]:
        """The blobs this manifest references: config first, then layers (not children)."""
        if self.config is None:
            return self.layers
        return (self.config, *self.layers)

    def children(self) -> tuple[Descriptor, ...]:
        """Child manifests of an index (empty for an image manifest)."""
        return self.manifests

    def __repr__(self) -> str:
        kind = "index" if self.is_index else "manifest"
        return f"Manifest({kind}, {self.digest.short}, {len(self.raw)} bytes)"


def _str(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{what}: {key!r} must be a string")
    return value


def _annotations(obj: Mapping[str, Any], what: str) -> tuple[tuple[str, str], ...]:
    value = obj.get("annotations")
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError(f"{what}: annotations must map strings to strings")
    return tuple(value.items())


def parse_descriptor(obj: object, what: str = "descriptor") -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: expected an object")
    media_type = _str(obj, "mediaType", what)
    digest_text = _str(obj, "digest", what)
    size = obj.get("size")
    if media_type is None or digest_text is None:
        raise ManifestError(f"{what}: mediaType and digest are required")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what}: size must be a non-negative integer")
    try:
        digest = Digest.parse(digest_text)
    except ReferenceError_ as exc:
        raise ManifestError(f"{what}: {exc}") from None
    urls = obj.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestError(f"{what}: urls must be a list of strings")
    platform = None
    raw_platform = obj.get("platform")
    if raw_platform is not None:
        if not isinstance(raw_platform, dict):
            raise ManifestError(f"{what}: platform must be an object")
        os_name = _str(raw_platform, "os", what)
        arch = _str(raw_platform, "architecture", what)
        if os_name is None or arch is None:
            raise ManifestError(f"{what}: platform needs os and architecture")
        features = raw_platform.get("os.features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ManifestError(f"{what}: os.features must be a list of strings")
        platform = Platform(
            os_name,
            arch,
            _str(raw_platform, "variant", what),
            _str(raw_platform, "os.version", what),
            tuple(features),
        )
    return Descriptor(
        media_type,
        digest,
        size,
        tuple(urls),
        _annotations(obj, what),
        platform,
        _str(obj, "artifactType", what),
    )


def parse_manifest(
    raw: bytes, media_type: str | None = None, digest: Digest | None = None
) -> Manifest:
    """Parse manifest bytes. ``media_type`` is the Content-Type (used when the body has no
    ``mediaType``); ``digest`` defaults to the sha256 of ``raw``."""
    if len(raw) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"manifest of {len(raw)} bytes exceeds the {MAX_MANIFEST_SIZE} byte limit")
    if digest is None:
        digest = Digest.of(raw)
    what = f"manifest {digest.short}"
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{what}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    body_type = _str(doc, "mediaType", what)
    header_type = mt.base_type(media_type) if media_type else None
    if header_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED) or doc.get("schemaVersion") == 1:
        raise ManifestError(f"{what}: Docker schema 1 manifests are not supported")
    resolved = body_type or (header_type if header_type in mt.MANIFEST_TYPES else None)
    if resolved is None:
        # image-spec: mediaType SHOULD be set; infer from the shape as containerd does.
        if "manifests" in doc:
            resolved = mt.OCI_INDEX
        elif "config" in doc or "layers" in doc:
            resolved = mt.OCI_MANIFEST
        else:
            raise ManifestError(f"{what}: cannot tell whether it is a manifest or an index")
    subject = parse_descriptor(doc["subject"], f"{what} subject") if doc.get("subject") else None
    artifact_type = _str(doc, "artifactType", what)
    annotations = _annotations(doc, what)
    if mt.is_index(resolved):
        if not isinstance(doc.get("manifests"), list):
            raise ManifestError(f"{what}: an index needs a manifests list")
        return Manifest(
            raw,
            resolved,
            digest,
            manifests=_descriptor_list(doc, "manifests", what),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    if resolved == mt.OCI_ARTIFACT_MANIFEST:
        layers = _descriptor_list(doc, "blobs", what)
        return Manifest(raw, resolved, digest, None, layers, (), subject, artifact_type, annotations)
    if resolved not in mt.IMAGE_MANIFEST_TYPES:
        raise ManifestError(f"{what}: unsupported media type {resolved!r}")
    config = parse_descriptor(doc.get("config"), f"{what} config")
    layers = _descriptor_list(doc, "layers", what)
    return Manifest(raw, resolved, digest, config, layers, (), subject, artifact_type, annotations)


def _descriptor_list(doc: dict[str, Any], key: str, what: str) -> tuple[Descriptor, ...]:
    """``doc[key]`` as descriptors (``layers``, ``blobs``, ``manifests``); absent is none."""
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise ManifestError(f"{what}: {key} must be a list")
    return tuple(parse_descriptor(x, f"{what} {key}[{i}]") for i, x in enumerate(items))


def verify_manifest(raw: bytes, expected: Digest, what: str) -> None:
    """Raise :class:`IntegrityError` unless ``raw`` hashes to ``expected``."""
    actual = Digest.of(raw, expected.algorithm)
    if actual != expected:
        raise IntegrityError(f"{what}: digest mismatch: expected {expected}, computed {actual}")


def merge_referrers_index(
    existing: Manifest | None,
    wanted: Sequence[Descriptor],
    source_index: Manifest | None = None,
) -> Manifest | None:
    """The referrers tag-schema index (distribution-spec "Referrers Tag Schema": an image
    index tagged ``<alg>-<hex of subject>``) to push at a target so that it lists ``wanted``.

    Every entry of ``existing`` (the target's index) is kept, byte for byte: others add
    referrers at a mirror too (a signature made there), and, as with the referrers API, a
    sync never removes a referrer. The wanted descriptors it lacks are appended; None when
    there are none (nothing to push). ``source_index`` is pushed as it is (the source's
    digest) when it lists exactly ``wanted`` and everything ``existing`` lists."""
    if existing is not None and not existing.is_index:
        raise ManifestError(
            f"the referrers tag holds {existing.media_type} {existing.digest.short}, not an "
            "image index: left as it is"
        )
    present = {str(d.digest) for d in existing.manifests} if existing is not None else set()
    wanted_digests = {str(d.digest) for d in wanted}
    missing = list({str(d.digest): d for d in wanted if str(d.digest) not in present}.values())
    if existing is not None and not missing:
        return None
    if (
        source_index is not None
        and len(source_index.manifests) == len(wanted)
        and {str(d.digest) for d in source_index.manifests} == wanted_digests
        and present <= wanted_digests
    ):
        return source_index
    # Descriptors are copied as JSON objects, so fields this parser does not know survive.
    source_entries: dict[str, Any] = {}
    if source_index is not None:
        for entry in json.loads(source_index.raw).get("manifests") or []:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                source_entries.setdefault(entry["digest"], entry)
    added = [source_entries.get(str(d.digest)) or d.to_json() for d in missing]
    if existing is None:
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": added}
        return parse_manifest(json.dumps(doc, separators=(",", ":")).encode(), mt.OCI_INDEX)
    return parse_manifest(_append_to_array(existing.raw, "manifests", added), existing.media_type)


def _append_to_array(raw: bytes, key: str, items: Sequence[Any]) -> bytes:
    """``raw`` (a JSON object whose ``key`` is an array) with ``items`` appended to that
    array; every other byte stays as it was (compact JSON for the new items)."""
    text = raw.decode("utf-8")
    decoder = json.JSONDecoder()

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip(0)
    if text[pos : pos + 1] != "{":
        raise ManifestError("expected a JSON object")
    pos = skip(pos + 1)
    span: tuple[int, int] | None = None
    while pos < len(text) and text[pos] != "}":
        name, pos = decoder.raw_decode(text, pos)  # the key (a JSON string)
        pos = skip(skip(pos) + 1)  # the colon
        value, end = decoder.raw_decode(text, pos)
        if name == key and isinstance(value, list):
            span = (end, len(value))  # the last one wins, as in json.loads
        pos = skip(end)
        if text[pos : pos + 1] == ",":
            pos = skip(pos + 1)
    if span is None:
        raise ManifestError(f"expected a {key!r} array")
    end, count = span
    encoded = ",".join(json.dumps(item, separators=(",", ":")) for item in items)
    if count and encoded:
        encoded = "," + encoded
    return (text[: end - 1] + encoded + text[end - 1 :]).encode("utf-8")


__all__ = [
    "MAX_MANIFEST_SIZE",
    "Descriptor",
    "Manifest",
    "ManifestError",
    "Platform",
    "merge_referrers_index",
    "parse_descriptor",
    "parse_manifest",
    "verify_manifest",
]
