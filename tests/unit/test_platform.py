"""Platform parsing, matching and index trimming (ocync.oci.platform)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocync.errors import ConfigError, ManifestError, NoMatchingPlatform
from ocync.oci.platform import Platform, parse_platforms, platform_from_config, trim_index

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _entry(digest: str, os_: str, arch: str, variant: str | None = None,
           annotations: dict[str, str] | None = None) -> dict[str, Any]:
    platform: dict[str, str] = {"architecture": arch, "os": os_}
    if variant:
        platform["variant"] = variant
    entry: dict[str, Any] = {"mediaType": MANIFEST_TYPE, "digest": digest, "size": 100,
                             "platform": platform}
    if annotations:
        entry["annotations"] = annotations
    return entry


def _index(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": list(entries),
                       "annotations": {"org.opencontainers.image.source": "x"}},
                      indent=3).encode()


AMD64 = _entry("sha256:" + "a" * 64, "linux", "amd64")
ARM64 = _entry("sha256:" + "b" * 64, "linux", "arm64", "v8")
ARMV7 = _entry("sha256:" + "c" * 64, "linux", "arm", "v7")
WIN = _entry("sha256:" + "d" * 64, "windows", "amd64")
ATTEST_AMD64 = _entry("sha256:" + "e" * 64, "unknown", "unknown", annotations={
    "vnd.docker.reference.digest": AMD64["digest"],
    "vnd.docker.reference.type": "attestation-manifest"})
ATTEST_ARM64 = _entry("sha256:" + "f" * 64, "unknown", "unknown", annotations={
    "vnd.docker.reference.digest": ARM64["digest"],
    "vnd.docker.reference.type": "attestation-manifest"})
INDEX = _index(AMD64, ARM64, ARMV7, WIN, ATTEST_AMD64, ATTEST_ARM64)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("linux/amd64", Platform("linux", "amd64"), id="two"),
        pytest.param("linux/arm/v7", Platform("linux", "arm", "v7"), id="three"),
        pytest.param(" linux/arm64 ", Platform("linux", "arm64"), id="spaces"),
    ],
)
def test_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected
    assert str(Platform.parse(text)) == text.strip()


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", "Linux/AMD64", "", "linux amd64"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="platform"):
        Platform.parse(text)


@pytest.mark.parametrize(
    ("wanted", "entry", "match"),
    [
        pytest.param("linux/amd64", Platform("linux", "amd64"), True, id="exact"),
        pytest.param("linux/arm", Platform("linux", "arm", "v6"), True, id="any-variant"),
        pytest.param("linux/arm/v7", Platform("linux", "arm", "v6"), False, id="variant-differs"),
        pytest.param("linux/arm64/v8", Platform("linux", "arm64"), True, id="arm64-default-v8"),
        pytest.param("linux/amd64", Platform("windows", "amd64"), False, id="os-differs"),
    ],
)
def test_matches(wanted: str, entry: Platform, match: bool) -> None:
    assert Platform.parse(wanted).matches(entry) is match


def test_trim_keeps_matching_and_their_attestations() -> None:
    trim = trim_index(INDEX, parse_platforms(["linux/amd64", "linux/arm64"]))
    assert trim.changed
    digests = [e["digest"] for e in trim.manifests]
    assert digests == [AMD64["digest"], ARM64["digest"], ATTEST_AMD64["digest"],
                       ATTEST_ARM64["digest"]]
    doc = json.loads(trim.index_bytes)
    assert doc["manifests"] == list(trim.manifests)
    assert doc["annotations"] == {"org.opencontainers.image.source": "x"}
    assert doc["mediaType"] == INDEX_TYPE
    assert trim.kept == (Platform("linux", "amd64"), Platform("linux", "arm64", "v8"))
    assert set(trim.dropped) == {Platform("linux", "arm", "v7"), Platform("windows", "amd64")}
    assert trim.missing == () and trim.warnings() == []


def test_trim_missing_platform_is_a_warning() -> None:
    trim = trim_index(INDEX, parse_platforms(["linux/amd64", "linux/s390x"]))
    assert trim.missing == (Platform("linux", "s390x"),)
    (warning,) = trim.warnings()
    assert "linux/s390x" in warning and "linux/arm/v7" in warning


def test_trim_nothing_matches_lists_available() -> None:
    with pytest.raises(NoMatchingPlatform) as info:
        trim_index(INDEX, parse_platforms(["linux/ppc64le"]))
    message = str(info.value)
    for p in ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "windows/amd64"):
        assert p in message
    assert "unknown" not in message


def test_trim_everything_kept_is_verbatim() -> None:
    index = _index(AMD64, ARM64)
    trim = trim_index(index, parse_platforms(["linux/amd64", "linux/arm64"]))
    assert trim.index_bytes is index and not trim.changed


def test_no_filter_is_verbatim() -> None:
    trim = trim_index(INDEX, ())
    assert trim.index_bytes is INDEX and not trim.changed and len(trim.manifests) == 6


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"manifests": 3}', b"\xff\xfe"])
def test_trim_bad_index(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        trim_index(raw, parse_platforms(["linux/amd64"]))


def test_entry_without_platform_is_dropped_when_filtering() -> None:
    bare = {"mediaType": MANIFEST_TYPE, "digest": "sha256:" + "9" * 64, "size": 1}
    trim = trim_index(_index(AMD64, bare), parse_platforms(["linux/amd64"]))
    assert [e["digest"] for e in trim.manifests] == [AMD64["digest"]]


def test_platform_from_config() -> None:
    assert platform_from_config({"os": "linux", "architecture": "arm", "variant": "v7"}) == \
        Platform("linux", "arm", "v7")
    assert platform_from_config({"os": "linux"}) is None
