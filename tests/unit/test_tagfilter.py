"""The tag filter pipeline (ocync.oci.tagfilter): each stage, the tiers and the attrition."""

from __future__ import annotations

import pytest

from ocync.errors import ConfigError
from ocync.oci.tagfilter import (
    TagFilter,
    apply_filter,
    is_glob,
    selections_may_overlap,
    sort_tags,
)

TAGS = [
    "latest", "1.0", "1.1", "1.2", "1.10", "2.0-rc1", "2.0-beta.1", "2.0", "2.1-alpine",
    "1.9-RC2", "edge", "nightly", "1.5-debug", "3.0-snapshot",
]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        pytest.param(TagFilter(), ["latest", "1.0", "1.1", "1.2", "1.10", "2.0", "2.1-alpine",
                                   "edge", "nightly", "1.5-debug"], id="defaults-drop-prereleases"),
        pytest.param(TagFilter(builtin_soft_excludes=False), TAGS, id="builtin-off"),
        pytest.param(TagFilter(glob=("1.*",)), ["1.0", "1.1", "1.2", "1.10", "1.5-debug"],
                     id="glob"),
        pytest.param(TagFilter(glob=("1.*", "edge")), ["1.0", "1.1", "1.2", "1.10", "edge",
                                                       "1.5-debug"], id="many-globs"),
        pytest.param(TagFilter(semver=">=1.1, <2.0"), ["1.1", "1.2", "1.10", "1.5-debug"],
                     id="semver"),
        pytest.param(TagFilter(glob=("1.1*",), semver=">=1.1"), ["1.1", "1.10"],
                     id="glob-and-semver"),
        pytest.param(TagFilter(semver=">=1.0", sort="semver", latest=3),
                     ["1.10", "2.0", "2.1-alpine"], id="latest-semver"),
        pytest.param(TagFilter(glob=("1.*",), sort="alpha", latest=2), ["1.2", "1.5-debug"], id="latest-alpha"),
        pytest.param(TagFilter(exclude=("*-debug", "edge")),
                     ["latest", "1.0", "1.1", "1.2", "1.10", "2.0", "2.1-alpine", "nightly"],
                     id="hard-exclude"),
        pytest.param(TagFilter(soft_exclude=("*-debug",), include=("*-debug",)),
                     ["latest", "1.0", "1.1", "1.2", "1.10", "2.0", "2.1-alpine", "edge",
                      "nightly", "1.5-debug"], id="glob-include-rescues-soft"),
        pytest.param(TagFilter(glob=("1.*",), include=("*-rc*",)),
                     ["1.0", "1.1", "1.2", "1.10", "2.0-rc1", "1.5-debug"],
                     id="glob-include-rescues-glob-and-builtin-case-sensitively"),
        pytest.param(TagFilter(glob=("1.*",), include=("*-[rR][cC]*",)),
                     ["1.0", "1.1", "1.2", "1.10", "2.0-rc1", "1.9-RC2", "1.5-debug"],
                     id="glob-include-class"),
        pytest.param(TagFilter(glob=("1.*",), include=("2.0-rc1", "missing")),
                     ["1.0", "1.1", "1.2", "1.10", "1.5-debug", "2.0-rc1", "missing"],
                     id="literal-includes-join"),
        pytest.param(TagFilter(glob=("1.*",), include=("edge",), exclude=("edge",)),
                     ["1.0", "1.1", "1.2", "1.10", "1.5-debug"], id="hard-beats-literal"),
        pytest.param(TagFilter(include=("*-rc*",), exclude=("2.0-*",)),
                     ["latest", "1.0", "1.1", "1.2", "1.10", "2.0", "2.1-alpine", "edge",
                      "nightly", "1.5-debug"], id="hard-beats-glob-include"),
        pytest.param(TagFilter(semver=">=1.0", sort="semver", latest=1, include=("latest",)),
                     ["2.1-alpine", "latest"], id="literal-does-not-count-against-latest"),
        pytest.param(TagFilter(include=("*-rc*",), sort="semver", latest=2, semver=">=2"),
                     ["2.0", "2.1-alpine"], id="glob-include-goes-through-latest"),
    ],
)
def test_pipeline(flt: TagFilter, expected: list[str]) -> None:
    assert sorted(apply_filter(flt, TAGS).tags) == sorted(expected)


def test_output_order_is_the_sort_order_including_literals() -> None:
    flt = TagFilter(glob=("1.*",), sort="semver", include=("edge",))
    assert apply_filter(flt, TAGS).tags == ("edge", "1.0", "1.1", "1.2", "1.5-debug", "1.10")
    unsorted = TagFilter(glob=("1.1*",), include=("edge",))
    assert apply_filter(unsorted, TAGS).tags == ("1.1", "1.10", "edge")


def test_unsorted_keeps_listing_order_and_dedupes() -> None:
    assert apply_filter(TagFilter(glob=("b", "a")), ["b", "a", "b"]).tags == ("b", "a")


def test_builtin_soft_tier_is_case_insensitive() -> None:
    kept = apply_filter(TagFilter(), ["1.0-RC1", "1.0-Beta", "1.0-PRE", "1.0"]).tags
    assert kept == ("1.0",)


def test_soft_tier_defaults_exclude() -> None:
    flt = TagFilter(soft_exclude=("*-debug",))
    assert apply_filter(flt, ["1.0", "1.0-debug"]).tags == ("1.0",)


def test_stages_record_attrition() -> None:
    flt = TagFilter(glob=("1.*", "2.*"), semver="<2.1", exclude=("1.1",), sort="semver",
                    latest=2, include=("latest",))
    sel = apply_filter(flt, TAGS)
    by_name = {s.name: s for s in sel.stages}
    assert [s.name for s in sel.stages] == [
        "input", "glob", "semver", "exclude (soft)", "exclude (hard)", "sort", "latest",
        "include (literal)",
    ]
    assert set(by_name["glob"].dropped) == {"latest", "edge", "nightly", "3.0-snapshot"}
    assert by_name["semver"].dropped == ("2.1-alpine",)
    assert set(by_name["exclude (soft)"].dropped) == {"2.0-rc1", "2.0-beta.1", "1.9-RC2"}
    assert by_name["exclude (hard)"].dropped == ("1.1",)
    assert by_name["latest"].kept == ("1.10", "2.0")
    assert by_name["include (literal)"].added == ("latest",)
    assert sel.tags == ("latest", "1.10", "2.0")
    assert sel.literal_added == ()
    # every stage's kept list is the next stage's input
    for prev, cur in zip(sel.stages, sel.stages[1:], strict=False):
        assert set(cur.kept) == (set(prev.kept) - set(cur.dropped)) | set(cur.added)
    d = sel.to_dict()
    assert d["tags"] == ["latest", "1.10", "2.0"] and len(d["stages"]) == 8  # type: ignore[arg-type]


def test_literal_not_listed_is_reported() -> None:
    sel = apply_filter(TagFilter(glob=("none",), include=("v9",)), ["a"])
    assert sel.tags == ("v9",)
    assert sel.literal_added == ("v9",)


@pytest.mark.parametrize(
    ("min_tags", "below"),
    [pytest.param(None, False, id="unset"), pytest.param(3, False, id="met"),
     pytest.param(4, True, id="short")],
)
def test_min_tags(min_tags: int | None, below: bool) -> None:
    sel = apply_filter(TagFilter(glob=("1.?",), min_tags=min_tags), TAGS)
    assert sel.tags == ("1.0", "1.1", "1.2")
    assert sel.below_min_tags is below
    assert (sel.min_tags_message() is not None) is below
    if below:
        assert "min_tags is 4" in str(sel.min_tags_message())


def test_latest_zero_and_unsorted_latest() -> None:
    assert apply_filter(TagFilter(sort="alpha", latest=0), ["a", "b"]).tags == ()
    # without sort (the config forbids it) latest keeps the first N listed
    assert apply_filter(TagFilter(latest=1), ["b", "a"]).tags == ("b",)


def test_bad_semver_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        TagFilter(semver=">=x")


@pytest.mark.parametrize(
    ("pattern", "glob"),
    [("1.0", False), ("*", True), ("v?", True), ("[ab]", True), ("latest", False)],
)
def test_is_glob(pattern: str, glob: bool) -> None:
    assert is_glob(pattern) is glob


def test_sort_tags() -> None:
    assert sort_tags(["1.10", "1.9", "a"], "semver") == ["a", "1.9", "1.10"]
    assert sort_tags(["1.10", "1.9", "a"], "alpha") == ["1.10", "1.9", "a"]


def test_latest_larger_than_candidates_keeps_all() -> None:
    assert apply_filter(TagFilter(sort="semver", latest=5), ["2", "1", "3"]).tags == ("1", "2", "3")


def test_listed_literal_include_does_not_take_a_latest_place() -> None:
    flt = TagFilter(sort="semver", latest=2, include=("1.0",))
    sel = apply_filter(flt, ["1.0", "1.1", "1.2", "1.3"])
    assert sel.tags == ("1.0", "1.2", "1.3")
    assert apply_filter(flt, sel.tags).tags == sel.tags


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        pytest.param(TagFilter(), TagFilter(), True, id="both-everything"),
        pytest.param(TagFilter(glob=("1.*",)), TagFilter(glob=("2.*",)), True, id="two-globs-in-doubt"),
        pytest.param(TagFilter(glob=(), include=("v1",)), TagFilter(glob=(), include=("v2",)), False,
                     id="disjoint-literals"),
        pytest.param(TagFilter(glob=(), include=("v1", "v2")), TagFilter(glob=(), include=("v2",)), True,
                     id="shared-literal"),
        pytest.param(TagFilter(glob=(), include=("v1", "v2"), exclude=("v2",)),
                     TagFilter(glob=(), include=("v2",)), False, id="shared-literal-hard-excluded"),
        pytest.param(TagFilter(glob=("1.*",)), TagFilter(glob=(), include=("latest",)), False,
                     id="literal-outside-glob"),
        pytest.param(TagFilter(glob=("1.*",)), TagFilter(glob=(), include=("1.2",)), True,
                     id="literal-inside-glob"),
        pytest.param(TagFilter(glob=(), include=("v*",)), TagFilter(glob=(), include=("v1",)), True,
                     id="glob-include-reaches-literal"),
        pytest.param(TagFilter(glob=(), include=()), TagFilter(), False, id="selects-nothing"),
    ],
)
def test_selections_may_overlap(a: TagFilter, b: TagFilter, overlap: bool) -> None:
    assert selections_may_overlap(a, b) is overlap
    assert selections_may_overlap(b, a) is overlap
