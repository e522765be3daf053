"""The lenient version parser, the total tag order and semver ranges (ocync.oci.version)."""

from __future__ import annotations

import pytest

from ocync.errors import ConfigError
from ocync.oci.version import parse_range, parse_version, tag_sort_key


def compare_tags(a: str, b: str) -> int:
    """-1, 0 or 1 by :func:`tag_sort_key` (the order tags are sorted in)."""
    ka, kb = tag_sort_key(a), tag_sort_key(b)
    return (ka > kb) - (ka < kb)


@pytest.mark.parametrize(
    ("text", "parts", "pre", "variant", "build"),
    [
        pytest.param("1", ("1",), None, None, None, id="one-part"),
        pytest.param("v1.2", ("1", "2"), None, None, None, id="v-prefix"),
        pytest.param("V3.4.5", ("3", "4", "5"), None, None, None, id="capital-V"),
        pytest.param("1.2.3.4", ("1", "2", "3", "4"), None, None, None, id="four-parts"),
        pytest.param("1.25.3-alpine", ("1", "25", "3"), None, "alpine", None, id="variant"),
        pytest.param("3.19.1-r3", ("3", "19", "1"), None, "r3", None, id="alpine-revision"),
        pytest.param("2.0.0-rc.1+build.5", ("2", "0", "0"), "rc.1", None, "build.5", id="semver"),
        pytest.param("1.0.0-beta", ("1", "0", "0"), "beta", None, None, id="beta"),
        pytest.param("1.0rc1", ("1", "0"), "rc1", None, None, id="pep440-direct"),
        pytest.param("20240101", ("20240101",), None, None, None, id="date"),
        pytest.param("3.12-slim-bookworm", ("3", "12"), None, "slim-bookworm", None, id="debian"),
        pytest.param("1.2.3-SNAPSHOT", ("1", "2", "3"), "SNAPSHOT", None, None, id="maven"),
        pytest.param("1.2.3+meta", ("1", "2", "3"), None, None, "meta", id="build-only"),
    ],
)
def test_parse_version(
    text: str, parts: tuple[str, ...], pre: str | None, variant: str | None, build: str | None
) -> None:
    v = parse_version(text)
    assert v is not None
    assert (v.parts, v.prerelease, v.variant, v.build) == (parts, pre, variant, build)
    assert str(v) == text


@pytest.mark.parametrize(
    "text",
    ["latest", "", "v", "1.2.3.4.5", "sha-abc123", "1.0-", "1..2", ".1", "1.0+", "1abc",
     "main", "1.0 ", "-1.0", "1.0-+x", "\x00", "1.0-é"],
)
def test_not_a_version(text: str) -> None:
    assert parse_version(text) is None


def test_huge_numbers_do_not_overflow() -> None:
    big = "9" * 5000
    v = parse_version(big + ".1")
    assert v is not None
    assert compare_tags(big + ".1", "1" + big + ".0") == -1


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        pytest.param("1.9", "1.10", id="numeric-not-lexical"),
        pytest.param("1.0.0-rc.1", "1.0.0", id="pre-below-release"),
        pytest.param("1.0.0-alpha", "1.0.0-beta", id="pre-order"),
        pytest.param("1.0.0-rc9", "1.0.0-rc10", id="pre-natural"),
        pytest.param("1.0.0-alpha.1", "1.0.0-alpha.beta", id="numeric-below-text"),
        pytest.param("1.0", "1.0-alpine", id="release-below-variant"),
        pytest.param("3.19.1-r9", "3.19.1-r10", id="revision-natural"),
        pytest.param("latest", "0.0.1", id="non-version-below-versions"),
        pytest.param("edge", "latest", id="non-versions-natural"),
        pytest.param("1.2", "1.2.0", id="fewer-parts-first-when-equal"),
        pytest.param("1.2.3", "v1.2.3", id="v-after-plain"),
        pytest.param("2.0.0-rc1", "2.0.0", id="rc-before-release"),
        pytest.param("1.99.99", "2.0.0-rc1", id="rc-after-previous"),
    ],
)
def test_order(lower: str, higher: str) -> None:
    assert tag_sort_key(lower) < tag_sort_key(higher)
    assert compare_tags(lower, higher) == -1
    assert compare_tags(higher, lower) == 1


def test_sorted_list() -> None:
    tags = ["1.10", "1.9", "latest", "1.10-rc1", "v1.10", "2", "1.10-r3", "1.10-r10", "1.10.0"]
    assert sorted(tags, key=tag_sort_key) == [
        "latest", "1.9", "1.10-rc1", "1.10", "v1.10", "1.10.0", "1.10-r3", "1.10-r10", "2",
    ]


@pytest.mark.parametrize(
    ("rng", "inside", "outside"),
    [
        pytest.param(">=1.0, <2.0", ["1.0", "1.5.3", "v1.9", "1.2-alpine", "2.0.0-rc1"],
                     ["0.9", "2.0", "2.0.0", "latest"], id="half-open"),
        pytest.param("=1.2", ["1.2", "1.2.0", "v1.2.0.0", "1.2-alpine"], ["1.2.1", "1.2-rc1"],
                     id="equals"),
        pytest.param("1.2", ["1.2.0"], ["1.3"], id="bare-is-equals"),
        pytest.param(">1.0", ["1.0.1", "1.1-rc1"], ["1.0", "1.0-rc1", "0.1"], id="greater"),
        pytest.param("<=1.0", ["1.0", "0.5", "1.0-rc1"], ["1.0.1"], id="less-equal"),
        pytest.param(">= 1.0 , < 1.1, != 1.0.5", ["1.0.4", "1.0.6"], ["1.0.5", "1.1"],
                     id="spaces-and-not-equal"),
        pytest.param(">=v2", ["2.0", "v3"], ["1.99"], id="v-prefix-bound"),
    ],
)
def test_range(rng: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(rng)
    for tag in inside:
        assert r.contains(tag), tag
    for tag in outside:
        assert not r.contains(tag), tag


@pytest.mark.parametrize(
    ("rng", "needle"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param(">=1.0 <2.0", "comma", id="no-comma"),
        pytest.param(">=1.0,", "empty comparator", id="trailing-comma"),
        pytest.param("~1.0", "not a version", id="tilde"),
        pytest.param(">=latest", "not a version", id="word"),
        pytest.param(">=1.0-alpine", "not a version", id="variant-bound"),
    ],
)
def test_bad_range(rng: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_range(rng)
