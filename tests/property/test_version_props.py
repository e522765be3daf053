"""Hypothesis: the version parser never raises and orders every string consistently."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.oci.version import parse_range, parse_version, tag_sort_key

TAG_ALPHABET = "0123456789.-_+vVrcalphbetRC"
tagish = st.text(alphabet=TAG_ALPHABET, max_size=16)
anything = st.one_of(st.text(max_size=40), tagish)
versions = st.builds(
    lambda v, parts, suffix: ("v" if v else "") + ".".join(map(str, parts)) + suffix,
    st.booleans(),
    st.lists(st.integers(0, 30), min_size=1, max_size=4),
    st.sampled_from(["", "-rc1", "-rc.2", "-alpha", "-beta.3", "-alpine", "-r3", "+b1", "-1"]),
)

SETTINGS = settings(max_examples=300, deadline=None)


def compare_tags(a: str, b: str) -> int:
    """-1, 0 or 1 by :func:`tag_sort_key` (the order tags are sorted in)."""
    ka, kb = tag_sort_key(a), tag_sort_key(b)
    return (ka > kb) - (ka < kb)


@SETTINGS
@given(anything)
def test_parse_never_raises(text: str) -> None:
    v = parse_version(text)
    if v is not None:
        assert v.raw == text
        assert 1 <= len(v.parts) <= 4
    tag_sort_key(text)


@SETTINGS
@given(versions)
def test_generated_versions_parse(text: str) -> None:
    assert parse_version(text) is not None


@SETTINGS
@given(st.one_of(anything, versions), st.one_of(anything, versions))
def test_antisymmetric(a: str, b: str) -> None:
    assert compare_tags(a, b) == -compare_tags(b, a)
    assert (compare_tags(a, b) == 0) == (a == b)


@SETTINGS
@given(st.lists(st.one_of(tagish, versions), min_size=3, max_size=3))
def test_transitive(tags: list[str]) -> None:
    a, b, c = sorted(tags, key=tag_sort_key)
    assert compare_tags(a, b) <= 0 and compare_tags(b, c) <= 0
    assert compare_tags(a, c) <= 0


@SETTINGS
@given(st.lists(st.one_of(tagish, versions), max_size=20))
def test_sort_is_deterministic(tags: list[str]) -> None:
    assert sorted(tags, key=tag_sort_key) == sorted(reversed(tags), key=tag_sort_key)


@SETTINGS
@given(versions, versions)
def test_range_agrees_with_precedence(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    assert va is not None and vb is not None
    if vb.variant is None:
        assert parse_range(f">={b}").contains(a) == (va.precedence >= vb.precedence)
        assert parse_range(f"<{b}").contains(a) == (va.precedence < vb.precedence)
