"""The tag filter pipeline: which of a repository's tags a mapping mirrors (pure functions).

Stages, in order (the Rust ocync's filter order, which our users' configs assume):
  1. ``glob`` (any of the patterns, default ``*``) intersected with the ``semver`` range;
  2. ``exclude`` in two tiers: the soft tier (``defaults.tags.exclude`` plus the built-in
     pre-release patterns, matched case-insensitively) and the hard tier (the mapping's own
     ``exclude``, which nothing overrides);
  3. ``sort`` (``semver`` or ``alpha``) then ``latest: N`` (the N highest; literal includes
     never take one of the N places);
  4. ``include``: glob includes rescue tags from stage 1 and the soft tier and then go through
     the rest of the pipeline; literal includes join the result as written (hard tier still
     applies), even when the listing does not show them. The result is in sort order, or
     else in listing order with unlisted literals last, so filtering it again returns it;
  5. ``min_tags``: fewer survivors is an error for the mapping (reported, not raised here);
  6. ``immutable_tags``: tags whose content never changes; the engine skips one the transfer
     cache has seen at every target, without a request (``engine/tagdiscovery.discover_tag``).
Every stage is recorded (kept / dropped / added) for ``ocync tags`` and dry runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from ocync.oci.version import VersionRange, parse_range, tag_sort_key

# Soft tier, always on: pre-release channels nobody mirrors by accident.
BUILTIN_SOFT_EXCLUDES: tuple[str, ...] = (
    "*-rc*",
    "*-alpha*",
    "*-beta*",
    "*-pre*",
    "*-snapshot*",
    "*-nightly*",
)

SortOrder = Literal["semver", "alpha"]
_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """Whether an include pattern is a glob (rescues) or a literal tag (joins as is)."""
    return any(ch in _GLOB_CHARS for ch in pattern)


def _matches_any(tag: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(tag, p) for p in patterns)


def _matches_any_folded(tag: str, patterns: Iterable[str]) -> bool:
    folded = tag.lower()
    return any(fnmatchcase(folded, p.lower()) for p in patterns)


@dataclass(frozen=True, slots=True)
class TagFilter:
    """The effective filter of one mapping (mapping fields already merged over defaults).

    ``soft_exclude`` holds ``defaults.tags.exclude``; the built-in pre-release patterns are
    added unless ``builtin_soft_excludes`` is False. ``exclude`` is the hard tier.
    """

    glob: tuple[str, ...] = ("*",)
    semver: str | None = None
    exclude: tuple[str, ...] = ()
    soft_exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    sort: SortOrder | None = None
    latest: int | None = None
    min_tags: int | None = None
    immutable_tags: str | None = None
    builtin_soft_excludes: bool = True
    _range: VersionRange | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parse once; ConfigError for a bad range surfaces at construction.
        if self.semver is not None:
            object.__setattr__(self, "_range", parse_range(self.semver))
        if self.latest is not None and self.latest < 0:
            raise ValueError("latest must be >= 0")

    @property
    def soft_patterns(self) -> tuple[str, ...]:
        builtin = BUILTIN_SOFT_EXCLUDES if self.builtin_soft_excludes else ()
        return (*self.soft_exclude, *builtin)

    @property
    def glob_includes(self) -> tuple[str, ...]:
        return tuple(p for p in self.include if is_glob(p))

    @property
    def literal_includes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in self.include if not is_glob(p)))

    def is_immutable(self, tag: str) -> bool:
        return self.immutable_tags is not None and fnmatchcase(tag, self.immutable_tags)

    def is_soft_excluded(self, tag: str) -> bool:
        return _matches_any(tag, self.soft_exclude) or (
            self.builtin_soft_excludes and _matches_any_folded(tag, BUILTIN_SOFT_EXCLUDES)
        )

    def is_hard_excluded(self, tag: str) -> bool:
        return _matches_any(tag, self.exclude)

    def apply(self, tags: Iterable[str]) -> TagSelection:
        return apply_filter(self, tags)

    def to_dict(self) -> dict[str, object]:
        return {
            "glob": list(self.glob),
            "semver": self.semver,
            "exclude": list(self.exclude),
            "soft_exclude": list(self.soft_exclude),
            "include": list(self.include),
            "sort": self.sort,
            "latest": self.latest,
            "min_tags": self.min_tags,
            "immutable_tags": self.immutable_tags,
            "builtin_soft_excludes": self.builtin_soft_excludes,
        }


@dataclass(frozen=True, slots=True)
class Stage:
    """One pipeline stage: what it kept, what it dropped, what it added."""

    name: str
    detail: str
    kept: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "detail": self.detail,
            "kept": list(self.kept),
            "dropped": list(self.dropped),
            "added": list(self.added),
        }


@dataclass(frozen=True, slots=True)
class TagSelection:
    """The pipeline's result: the tags to mirror and how each stage got there."""

    tags: tuple[str, ...]
    stages: tuple[Stage, ...]
    literal_added: tuple[str, ...] = ()  # literal includes the listing did not show
    min_tags: int | None = None

    @property
    def below_min_tags(self) -> bool:
        return self.min_tags is not None and len(self.tags) < self.min_tags

    def min_tags_message(self) -> str | None:
        """The mapping's error text when ``min_tags`` is not met, else None."""
        if not self.below_min_tags:
            return None
        return f"only {len(self.tags)} tag(s) left after filtering, min_tags is {self.min_tags}"

    def to_dict(self) -> dict[str, object]:
        return {
            "tags": list(self.tags),
            "stages": [s.to_dict() for s in self.stages],
            "literal_added": list(self.literal_added),
            "min_tags": self.min_tags,
            "below_min_tags": self.below_min_tags,
        }


def sort_tags(tags: Iterable[str], order: SortOrder) -> list[str]:
    """Ascending; ``semver`` puts non-versions first (natural order), then versions."""
    if order == "semver":
        return sorted(tags, key=tag_sort_key)
    return sorted(tags)


# Each stage of the pipeline: (filter, the listing, the tags so far) -> the tags it keeps.
_StageRun = Callable[["TagFilter", Sequence[str], Sequence[str]], list[str]]


def _glob_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    return [t for t in listed if _matches_any(t, flt.glob)]


def _semver_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    assert flt._range is not None
    return [t for t in current if flt._range.contains(t)]


def _glob_include_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    """Glob includes rescue listed tags the glob and semver stages dropped."""
    chosen = set(current)
    return [t for t in listed if t in chosen or _matches_any(t, flt.glob_includes)]


def _soft_exclude_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    return [t for t in current if _matches_any(t, flt.glob_includes) or not flt.is_soft_excluded(t)]


def _hard_exclude_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    return [t for t in current if not flt.is_hard_excluded(t)]


def _sort_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    assert flt.sort is not None
    return sort_tags(current, flt.sort)


def _latest_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    assert flt.latest is not None
    # Literal includes never take one of the N places: they pass through and join anyway.
    literal_set = set(flt.literal_includes)
    pool = [t for t in current if t not in literal_set]
    # With a sort, the N highest; without one (the config forbids it), the first N listed.
    top = pool[max(0, len(pool) - flt.latest) :] if flt.sort is not None else pool[: flt.latest]
    keep = set(top) if flt.latest > 0 else set()
    return [t for t in current if t in keep or t in literal_set]


def _literal_include_stage(flt: TagFilter, listed: Sequence[str], current: Sequence[str]) -> list[str]:
    """Literal includes join as written (the hard tier still applies), listed or not."""
    joined = list(current)
    present = set(current)
    for tag in flt.literal_includes:
        if tag not in present and not flt.is_hard_excluded(tag):
            joined.append(tag)
            present.add(tag)
    # One order for the whole result, so that filtering the output again gives it back:
    # the sort order, or else the listing's order with unlisted literals at the end.
    if flt.sort is not None:
        return sort_tags(joined, flt.sort)
    listed_set = set(listed)
    return [t for t in listed if t in present] + [t for t in joined if t not in listed_set]


# (name, whether it runs for a filter, its detail for the report, the stage), in pipeline order.
_STAGES: tuple[tuple[str, Callable[[TagFilter], bool], Callable[[TagFilter], str], _StageRun], ...] = (
    ("glob", lambda f: True, lambda f: " | ".join(f.glob), _glob_stage),
    ("semver", lambda f: f._range is not None, lambda f: str(f._range), _semver_stage),
    ("include (glob)", lambda f: bool(f.glob_includes), lambda f: " | ".join(f.glob_includes),
     _glob_include_stage),
    ("exclude (soft)", lambda f: True, lambda f: " | ".join(f.soft_patterns) or "-", _soft_exclude_stage),
    ("exclude (hard)", lambda f: bool(f.exclude), lambda f: " | ".join(f.exclude), _hard_exclude_stage),
    ("sort", lambda f: f.sort is not None, lambda f: str(f.sort), _sort_stage),
    ("latest", lambda f: f.latest is not None, lambda f: str(f.latest), _latest_stage),
    ("include (literal)", lambda f: bool(f.literal_includes), lambda f: " | ".join(f.literal_includes),
     _literal_include_stage),
)


def _recorded(name: str, detail: str, before: Sequence[str], after: Sequence[str]) -> Stage:
    kept = set(after)
    prior = set(before)
    dropped = tuple(t for t in before if t not in kept)
    added = tuple(t for t in after if t not in prior)
    return Stage(name, detail, tuple(after), dropped, added)


def apply_filter(flt: TagFilter, tags: Iterable[str]) -> TagSelection:
    """Run the pipeline over a tag listing (duplicates ignored, order kept)."""
    listed = list(dict.fromkeys(tags))
    stages: list[Stage] = [Stage("input", f"{len(listed)} tag(s) listed", tuple(listed))]
    current: list[str] = listed
    for name, runs, detail, stage in _STAGES:
        if runs(flt):
            before, current = current, stage(flt, listed, current)
            stages.append(_recorded(name, detail(flt), before, current))
    # Only literal includes add tags the listing does not show; in the order they are written.
    listed_set, selected = set(listed), set(current)
    added = (t for t in dict.fromkeys(flt.literal_includes) if t in selected and t not in listed_set)
    return TagSelection(
        tags=tuple(current),
        stages=tuple(stages),
        literal_added=tuple(added),
        min_tags=flt.min_tags,
    )


def selections_may_overlap(a: TagFilter, b: TagFilter) -> bool:
    """Whether two filters could ever select a common tag, from whatever listing.

    False only when provably disjoint. A selection is at most the tags matching its globs
    (``glob`` and glob ``include``) plus its literal includes (those not hard-excluded), so:
    two filters with globs may always overlap (when in doubt, they do); otherwise no literal
    of one may be a literal of the other or match the other's globs.
    """
    def reach(flt: TagFilter) -> tuple[tuple[str, ...], set[str]]:
        patterns = (*flt.glob, *flt.glob_includes)
        return patterns, {t for t in flt.literal_includes if not flt.is_hard_excluded(t)}

    patterns_a, literals_a = reach(a)
    patterns_b, literals_b = reach(b)
    if patterns_a and patterns_b:
        return True
    if literals_a & literals_b:
        return True
    return any(_matches_any(t, patterns_b) for t in literals_a) or any(
        _matches_any(t, patterns_a) for t in literals_b
    )


__all__ = [
    "BUILTIN_SOFT_EXCLUDES",
    "SortOrder",
    "Stage",
    "TagFilter",
    "TagSelection",
    "apply_filter",
    "is_glob",
    "selections_may_overlap",
    "sort_tags",
]
