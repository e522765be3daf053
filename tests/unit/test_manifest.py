"""Manifest, index and descriptor parsing: bytes kept bit-for-bit, references listed."""

from __future__ import annotations

import json

import pytest

from ocync.errors import IntegrityError, ManifestError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import (
    MAX_MANIFEST_SIZE,
    Platform,
    merge_referrers_index,
    parse_descriptor,
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
    with pytest.raises(IntegrityError, match="m: digest mismatch"):
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


# ---- the referrers tag-schema index: merged, never rewritten from one side only ---------

SIG = desc(mt.OCI_MANIFEST, b"sig", artifactType="application/vnd.example.sig")
SBOM = desc(mt.OCI_MANIFEST, b"sbom", artifactType="application/spdx+json")
# added at the mirror by someone else: Go-style escapes, odd spacing, a field of its own
MIRROR_RAW = (
    '{"schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.index.v1+json",\n'
    '  "manifests": [ {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'
    + str(Digest.of(b"mine")) + '","size":4,"annotations":{"note":"\\u003cmirror\\u003e \u00fc"},'
    '"x-own":true} ],\n  "annotations": {"manifests": "not this one"}\n}'
).encode()
MINE = {"digest": str(Digest.of(b"mine"))}


def _index(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode()


@pytest.mark.parametrize(
    ("existing", "wanted", "source", "expected"),
    [
        pytest.param(None, [SIG], None, [SIG], id="none-at-target"),
        pytest.param(MIRROR_RAW, [SIG, SBOM], None, [MINE, SIG, SBOM], id="mirror-entry-kept"),
        pytest.param(MIRROR_RAW, [SIG], _index([SIG]), [MINE, SIG], id="source-index-not-pushed-over-it"),
        pytest.param(_index([SIG]), [SIG, SBOM], _index([SIG, SBOM]), "source", id="source-index-covers-target"),
        pytest.param(None, [SIG], _index([SIG, SBOM]), [SIG], id="policy-drops-one"),
        pytest.param(_index([SIG, SBOM]), [SIG], None, None, id="source-dropped-one-kept-nothing-to-push"),
        pytest.param(_index([]), [SIG], None, [SIG], id="empty-index-at-target"),
        pytest.param(_index([SIG]), [SIG, SIG], None, None, id="nothing-new"),
    ],
)
def test_merge_referrers_index(
    existing: bytes | None, wanted: list[dict[str, object]], source: bytes | None,
    expected: list[dict[str, object]] | str | None,
) -> None:
    have = parse_manifest(existing, mt.OCI_INDEX) if existing is not None else None
    source_index = parse_manifest(source, mt.OCI_INDEX) if source is not None else None
    merged = merge_referrers_index(have, [parse_descriptor(w) for w in wanted], source_index)
    if expected is None:
        assert merged is None
        return
    assert merged is not None and merged.is_index
    if expected == "source":
        assert source_index is not None and merged.raw == source_index.raw
        return
    assert isinstance(expected, list)
    entries = json.loads(merged.raw)["manifests"]
    assert [e["digest"] for e in entries] == [e["digest"] for e in expected]
    if existing is not None and existing != MIRROR_RAW:
        # what the target had stays byte for byte: only appended to before its last "]"
        assert merged.raw.startswith(existing[: existing.rindex(b"]")])


def test_merge_referrers_index_keeps_the_mirror_bytes() -> None:
    merged = merge_referrers_index(
        parse_manifest(MIRROR_RAW, mt.OCI_INDEX), [parse_descriptor(SIG), parse_descriptor(SBOM)]
    )
    assert merged is not None
    added = b",".join(json.dumps(d, separators=(",", ":")).encode() for d in (SIG, SBOM))
    assert merged.raw == MIRROR_RAW.replace(b'"x-own":true} ]', b'"x-own":true} ,' + added + b"]")


def test_merge_referrers_index_refuses_a_non_index() -> None:
    image = parse_manifest(json.dumps(IMAGE).encode())
    with pytest.raises(ManifestError, match="not an image index"):
        merge_referrers_index(image, [parse_descriptor(SIG)])
