"""Manifest, index and descriptor parsing: bytes kept bit-for-bit, references listed."""

from __future__ import annotations

import json

import pytest

from ocync.errors import ManifestError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import (
    MAX_MANIFEST_SIZE,
    Platform,
    parse_manifest,
    verify_manifest,
)


def desc(media_type: str, seed: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": str(Digest.of(seed)), "size": len(seed), **extra}


IMAGE = {
    "schemaVersion": 2,
    "mediaType": mt.OCI_MANIFEST,
    "artifactType": "application/vnd.example+type",
    "config": desc(mt.OCI_CONFIG, b"config"),
    "layers": [desc(mt.OCI_LAYER_GZIP, b"l1"), desc(mt.OCI_LAYER_GZIP, b"l2", urls=["https://x/y"])],
    "subject": desc(mt.OCI_MANIFEST, b"subject"),
    "annotations": {"a": "b"},
}
INDEX = {
    "schemaVersion": 2,
    "mediaType": mt.OCI_INDEX,
    "manifests": [
        desc(mt.OCI_MANIFEST, b"amd", platform={"os": "linux", "architecture": "amd64"}),
        desc(mt.OCI_MANIFEST, b"arm", platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        desc(mt.OCI_MANIFEST, b"armv7", platform={"os": "linux", "architecture": "arm", "variant": "v7"}),
        desc("application/vnd.example.sig", b"sig"),
    ],
}


def test_image_manifest_fields_and_raw_bytes() -> None:
    raw = json.dumps(IMAGE, indent=7).encode() + b"\n"  # odd formatting must survive
    m = parse_manifest(raw)
    assert m.raw == raw and m.digest == Digest.of(raw) and m.size == len(raw)
    assert not m.is_index and m.children() == ()
    assert [b.digest for b in m.blobs()] == [Digest.of(x) for x in (b"config", b"l1", b"l2")]
    assert m.layers[1].urls == ("https://x/y",)
    assert m.subject is not None and m.subject.digest == Digest.of(b"subject")
    assert m.artifact_type == "application/vnd.example+type"
    assert m.annotations == (("a", "b"),)


def test_index_children_and_platforms() -> None:
    m = parse_manifest(json.dumps(INDEX).encode())
    assert m.is_index and m.blobs() == () and len(m.children()) == 4
    arm64 = m.select_platforms([Platform.parse("linux/arm64")])
    assert [d.digest for d in arm64] == [Digest.of(b"arm")]
    assert [d.digest for d in m.select_platforms([Platform.parse("linux/arm/v7")])] == [Digest.of(b"armv7")]
    assert m.select_platforms([Platform.parse("linux/arm/v6")]) == ()
    assert len(m.select_platforms([])) == 4


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param({"schemaVersion": 2, "manifests": []}, None, mt.OCI_INDEX, id="infer-index"),
        pytest.param({"schemaVersion": 2, "config": desc(mt.OCI_CONFIG, b"c"), "layers": []}, None, mt.OCI_MANIFEST, id="infer-manifest"),
        pytest.param({"schemaVersion": 2, "config": desc(mt.DOCKER_CONFIG, b"c"), "layers": []}, mt.DOCKER_MANIFEST + "; charset=utf-8", mt.DOCKER_MANIFEST, id="header-type"),
        pytest.param({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": []}, "text/plain", mt.DOCKER_MANIFEST_LIST, id="body-wins"),
    ],
)
def test_media_type_resolution(body: dict[str, object], content_type: str | None, expected: str) -> None:
    assert parse_manifest(json.dumps(body).encode(), content_type).media_type == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        pytest.param(b"not json", "not valid JSON", id="garbage"),
        pytest.param(b"[]", "JSON object", id="array"),
        pytest.param(b'{"schemaVersion": 1, "fsLayers": []}', "schema 1", id="schema1"),
        pytest.param(b'{"schemaVersion": 2}', "cannot tell", id="shapeless"),
        pytest.param(json.dumps({"mediaType": mt.OCI_INDEX, "manifests": [{"mediaType": "x"}]}).encode(), "required", id="desc-missing"),
        pytest.param(json.dumps({"mediaType": mt.OCI_INDEX, "manifests": [{"mediaType": "x", "digest": "sha256:1", "size": 1}]}).encode(), "sha256 needs", id="bad-digest"),
        pytest.param(json.dumps({"mediaType": mt.OCI_INDEX, "manifests": [dict(desc("x", b"a"), size=-1)]}).encode(), "non-negative", id="negative-size"),
        pytest.param(json.dumps({"mediaType": mt.OCI_MANIFEST, "layers": []}).encode(), "expected an object", id="no-config"),
        pytest.param(json.dumps({"mediaType": "application/x", "layers": []}).encode(), "unsupported media type", id="unknown-type"),
    ],
)
def test_invalid(raw: bytes, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        parse_manifest(raw)


def test_size_limit() -> None:
    raw = b'{"manifests": [], "pad": "' + b"x" * MAX_MANIFEST_SIZE + b'"}'
    with pytest.raises(ManifestError, match="exceeds"):
        parse_manifest(raw)


def test_verify_manifest() -> None:
    verify_manifest(b"abc", Digest.of(b"abc"), "m")
    with pytest.raises(Exception, match="m: digest mismatch"):
        verify_manifest(b"abd", Digest.of(b"abc"), "m")


@pytest.mark.parametrize(
    ("have", "want", "ok"),
    [
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm/v7", "linux/arm/v6", False),
        ("linux/amd64", "windows/amd64", False),
    ],
)
def test_platform_matches(have: str, want: str, ok: bool) -> None:
    assert Platform.parse(have).matches(Platform.parse(want)) is ok
    assert str(Platform.parse(have)) == have
