"""Hypothesis: invariants of the tag filter pipeline (ocync/oci/tagfilter.py)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.oci.tagfilter import TagFilter, apply_filter, selections_may_overlap

tags = st.lists(
    st.one_of(
        st.sampled_from(["latest", "edge", "1.0", "1.1-rc1", "2.0-beta", "1.2-alpine", "v3",
                         "2.0-RC2", "nightly", "1.10", "0.9-debug"]),
        st.text(alphabet="0123456789.-abcrv", min_size=1, max_size=8),
    ),
    max_size=25,
)
patterns = st.lists(
    st.sampled_from(["*", "1.*", "*-rc*", "v*", "*alpine*", "?.?", "latest", "edge", "2.0-beta",
                     "missing", "[12]*"]),
    max_size=3,
)


@st.composite
def filters(draw: st.DrawFn) -> TagFilter:
    sort = draw(st.sampled_from([None, "semver", "alpha"]))
    return TagFilter(
        glob=tuple(draw(patterns)) or ("*",),
        semver=draw(st.sampled_from([None, ">=1.0", "<2.0", ">=0.9, <1.5"])),
        exclude=tuple(draw(patterns)),
        soft_exclude=tuple(draw(patterns)),
        include=tuple(draw(patterns)),
        sort=sort,
        latest=draw(st.none() | st.integers(0, 6)) if sort else None,
        builtin_soft_excludes=draw(st.booleans()),
    )


SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(filters(), tags)
def test_output_within_input_and_literal_includes(flt: TagFilter, listing: list[str]) -> None:
    out = apply_filter(flt, listing).tags
    assert set(out) <= set(listing) | set(flt.literal_includes)
    assert len(out) == len(set(out))


@SETTINGS
@given(filters(), tags)
def test_latest_keeps_at_most_n_pipeline_tags(flt: TagFilter, listing: list[str]) -> None:
    out = apply_filter(flt, listing).tags
    if flt.latest is not None:
        pipeline = [t for t in out if t not in flt.literal_includes]
        assert len(pipeline) <= flt.latest


@SETTINGS
@given(filters(), tags)
def test_hard_exclude_always_wins(flt: TagFilter, listing: list[str]) -> None:
    out = apply_filter(flt, listing).tags
    assert not [t for t in out if any(fnmatchcase(t, p) for p in flt.exclude)]


@SETTINGS
@given(filters(), tags)
def test_idempotent(flt: TagFilter, listing: list[str]) -> None:
    once = apply_filter(flt, listing).tags
    assert apply_filter(flt, once).tags == once


@SETTINGS
@given(filters(), tags)
def test_stages_chain(flt: TagFilter, listing: list[str]) -> None:
    sel = apply_filter(flt, listing)
    for prev, cur in zip(sel.stages, sel.stages[1:], strict=False):
        assert set(cur.kept) == (set(prev.kept) - set(cur.dropped)) | set(cur.added)
    assert sel.stages[-1].kept == sel.tags


@SETTINGS
@given(filters(), tags)
def test_latest_keeps_the_highest(flt: TagFilter, listing: list[str]) -> None:
    if flt.latest is None:
        return
    sel = apply_filter(flt, listing)
    before = next(s for s in sel.stages if s.name == "latest")
    pool = [t for t in (sel.stages[sel.stages.index(before) - 1].kept)
            if t not in flt.literal_includes]
    kept = [t for t in before.kept if t not in flt.literal_includes]
    assert len(kept) == min(flt.latest, len(pool))


@st.composite
def filters_with_literals(draw: st.DrawFn) -> TagFilter:
    """filters() plus literal-only ones (``glob: []``), which the overlap check can reason about."""
    flt = draw(filters())
    if draw(st.booleans()):
        literals = draw(st.lists(st.sampled_from(["latest", "edge", "1.0", "v3", "2.0-beta", "x"]),
                                 max_size=3))
        return TagFilter(glob=(), include=tuple(literals), exclude=flt.exclude, sort=flt.sort)
    return flt


@SETTINGS
@given(filters_with_literals(), filters_with_literals(), tags)
def test_filters_said_disjoint_never_share_a_tag(a: TagFilter, b: TagFilter, listing: list[str]) -> None:
    """Two mappings may write one target repository only if this holds for every listing."""
    if not selections_may_overlap(a, b):
        assert not set(apply_filter(a, listing).tags) & set(apply_filter(b, listing).tags)
    assert selections_may_overlap(a, b) == selections_may_overlap(b, a)
