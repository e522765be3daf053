"""The pure OCI image layout model (ocync.oci.layout): ref names, layout references,
index.json reading and writing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocync.errors import ManifestError, OcyncError
from ocync.oci.digest import Digest
from ocync.oci.layout import (
    REF_NAME,
    UNNAMED,
    LayoutIndex,
    LayoutReference,
    blob_path,
    check_layout_marker,
    layout_marker,
    parse_layout_index,
    parse_layout_reference,
    ref_name,
    split_ref_name,
)
from ocync.oci.manifest import Descriptor

INDEX = "application/vnd.oci.image.index.v1+json"
D1 = Digest.of(b"one")
D2 = Digest.of(b"two")


def desc(digest: Digest, name: str | None = None) -> Descriptor:
    annotations = ((REF_NAME, name),) if name is not None else ()
    return Descriptor(INDEX, digest, 3, annotations=annotations)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("v1", (UNNAMED, "v1"), id="tag-alone-is-the-unnamed-repo"),
        pytest.param("app:v1", ("app", "v1"), id="repo-tag"),
        pytest.param("org/app/x:1.0", ("org/app/x", "1.0"), id="nested-repo"),
        pytest.param("reg:5000/app:1", ("reg:5000/app", "1"), id="last-colon-separates"),
    ],
)
def test_split_ref_name(name: str, expected: tuple[str, str]) -> None:
    assert split_ref_name(name) == expected
    assert ref_name(*expected) == name


HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("oci:/m", LayoutReference("oci-layout", "/m"), id="path-only"),
        pytest.param("oci:/m:v1", LayoutReference("oci-layout", "/m", None, "v1"), id="skopeo-tag"),
        pytest.param("oci:rel/dir:org/app:v1", LayoutReference("oci-layout", "rel/dir", "org/app", "v1"), id="repo-tag"),
        pytest.param(f"oci:/m@sha256:{HEX}", LayoutReference("oci-layout", "/m", digest=f"sha256:{HEX}"), id="digest"),
        pytest.param("oci-archive:/t.tar:v1", LayoutReference("oci-archive", "/t.tar", None, "v1"), id="archive"),
        pytest.param("ghcr.io/o/app:1", None, id="registry"),
        pytest.param("oci:", None, id="no-path"),
        pytest.param("ocix:/m", None, id="other-transport"),
    ],
)
def test_parse_layout_reference(text: str, expected: LayoutReference | None) -> None:
    assert parse_layout_reference(text) == expected


def test_tags_of_named_and_unnamed_repositories() -> None:
    index = LayoutIndex((desc(D1, "app:v1"), desc(D2, "v2"), desc(D2, "other:v1"), desc(D1)))
    assert index.tags("app") == ["v1"]
    assert index.tags("absent") == ["v2"]  # a repository the layout does not name: the unnamed one
    assert index.find("app", "v1") == desc(D1, "app:v1")
    assert index.find("absent", "v2", exact=True) is None  # a writer never sees the unnamed one
    assert index.find(UNNAMED, "v1") is None  # two repositories have v1: ambiguous
    assert LayoutIndex((desc(D1, "app:v1"),)).find(UNNAMED, "v1") == desc(D1, "app:v1")


def test_with_tag_replaces_in_place_and_adopts_an_untagged_entry() -> None:
    index = LayoutIndex((desc(D1, "app:v1"), desc(D2)))
    moved = index.with_tag("app", "v1", desc(D2))
    assert [(e.digest, e.annotation(REF_NAME)) for e in moved.entries] == [(D2, "app:v1")]
    added = index.with_tag("app", "v2", desc(D1))
    assert [e.annotation(REF_NAME) for e in added.entries] == ["app:v1", None, "app:v2"]
    assert index.with_untagged([desc(D1), desc(D2)]) == index  # both already named
    assert len(LayoutIndex().with_untagged([desc(D1), desc(D1)]).entries) == 1


def test_index_round_trip_keeps_the_index_annotations() -> None:
    raw = json.dumps({"schemaVersion": 2, "annotations": {"k": "v"},
                      "manifests": [desc(D1, "app:v1").to_json()]}).encode()
    index = parse_layout_index(raw, "here")
    again = parse_layout_index(index.to_bytes(), "here")
    assert again == index
    assert json.loads(index.to_bytes())["annotations"] == {"k": "v"}
    assert json.loads(index.to_bytes())["mediaType"] == INDEX


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"manifests": {}}', id="manifests-not-a-list"),
        pytest.param(b'{"manifests": [{"digest": "x"}]}', id="bad-descriptor"),
    ],
)
def test_bad_index_json_is_a_manifest_error(raw: bytes) -> None:
    with pytest.raises(ManifestError, match="here"):
        parse_layout_index(raw, "here")


def test_layout_marker_and_blob_path() -> None:
    check_layout_marker(layout_marker(), "here")
    with pytest.raises(ManifestError, match="unsupported imageLayoutVersion"):
        check_layout_marker(b'{"imageLayoutVersion": "2.0.0"}', "here")
    assert blob_path(D1) == f"blobs/sha256/{D1.encoded}"


@given(st.binary(max_size=300))
def test_arbitrary_index_bytes_raise_only_our_errors(raw: bytes) -> None:
    try:
        parse_layout_index(raw, "fuzz")
    except OcyncError:
        pass


@given(st.text(max_size=80))
def test_arbitrary_references_parse_or_are_none(text: str) -> None:
    ref = parse_layout_reference(text)
    assert ref is None or (ref.path and ref.kind in ("oci-layout", "oci-archive"))
