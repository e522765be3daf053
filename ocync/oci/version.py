"""A lenient version parser and a total order over every tag string.

Container tags are semver-ish at best: ``v1.2``, ``1.25.3-alpine``, ``3.19.1-r3``,
``2.0.0-rc.1+build.5``, ``20240101``. :func:`parse_version` accepts an optional ``v``,
1 to 4 numeric parts, a pre-release (semver 2.0.0 section 9, recognised by a keyword such
as ``rc`` or ``beta``), a variant (any other suffix: ``-alpine``, ``-r3``) and ``+build``
metadata. A numeric suffix (``1.2.3-1``) is read as a packaging revision, i.e. a variant,
as Debian and Alpine based tags use it, not as a semver pre-release. It never raises; tags that are not versions give ``None`` and still sort, below
every version, by :func:`tag_sort_key`, so sorting any list of strings is total and stable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocync.errors import ConfigError

# Pre-release keywords: semver 2.0.0 plus the spellings seen on Docker Hub and GHCR
# (PEP 440's a/b/rc/dev, Maven's -SNAPSHOT, nightly/canary channels).
PRERELEASE_KEYWORDS = frozenset(
    {"alpha", "a", "beta", "b", "rc", "c", "pre", "preview", "dev", "snapshot", "nightly",
     "canary", "next", "ea", "m"}
)

_CORE = re.compile(r"(?P<v>[vV])?(?P<core>[0-9]+(?:\.[0-9]+){0,3})(?P<rest>.*)", re.DOTALL)
_SUFFIX = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")
_DIRECT_PRE = re.compile(r"(?P<word>[A-Za-z]+)(?P<num>[0-9]*)(?:[.-][0-9A-Za-z.-]*)?")
_RUNS = re.compile(r"[0-9]+|[^0-9]+", re.DOTALL)

NaturalPart = tuple[int, int, str]
NaturalKey = tuple[NaturalPart, ...]
Precedence = tuple[tuple[tuple[int, str], ...], int, NaturalKey]


def _number_key(digits: str) -> tuple[int, str]:
    """Numeric order without int(): Python refuses int() on very long digit strings."""
    stripped = digits.lstrip("0") or "0"
    return (len(stripped), stripped)


def natural_key(text: str) -> NaturalKey:
    """Digit runs compare as numbers, other runs case-insensitively: ``r9`` < ``r10``."""
    key: list[NaturalPart] = []
    for run in _RUNS.findall(text):
        if run[0].isdigit():
            length, stripped = _number_key(run)
            key.append((0, length, stripped))
        else:
            key.append((1, 0, run.lower()))
    return tuple(key)


def _is_prerelease(suffix: str) -> bool:
    first = re.split(r"[.\-_]", suffix, maxsplit=1)[0]
    word = first.rstrip("0123456789").lower()
    return word in PRERELEASE_KEYWORDS


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed version tag. ``parts`` keeps the digits as written (no int() overflow)."""

    raw: str
    parts: tuple[str, ...]
    prerelease: str | None = None
    variant: str | None = None
    build: str | None = None
    v_prefix: bool = False

    @property
    def core(self) -> tuple[tuple[int, str], ...]:
        """The numeric parts padded to four (``1.2`` == ``1.2.0.0``), compared numerically."""
        padded = list(self.parts) + ["0"] * (4 - len(self.parts))
        return tuple(_number_key(p) for p in padded)

    @property
    def precedence(self) -> Precedence:
        """What range comparisons use: numbers, then pre-release < release (semver 11.3)."""
        if self.prerelease is None:
            return (self.core, 1, ())
        return (self.core, 0, natural_key(self.prerelease))

    @property
    def key(self) -> tuple[object, ...]:
        """Total order among versions; ties broken by the raw text so distinct tags differ."""
        variant = natural_key(self.variant) if self.variant is not None else ()
        build = natural_key(self.build) if self.build is not None else ()
        return (*self.precedence, variant, len(self.parts), build, self.v_prefix, self.raw)

    def __str__(self) -> str:
        return self.raw


def parse_version(text: str) -> Version | None:
    """Parse a tag leniently; ``None`` when it is not a version. Never raises."""
    if not isinstance(text, str):
        return None
    m = _CORE.fullmatch(text)
    if m is None:
        return None
    parts = tuple(m.group("core").split("."))
    rest = m.group("rest")
    build: str | None = None
    if "+" in rest:
        rest, build = rest.split("+", 1)
        if not build or not _SUFFIX.fullmatch(build):
            return None
    prerelease: str | None = None
    variant: str | None = None
    if rest:
        if rest[0] in "-_":
            suffix = rest[1:]
            if not _SUFFIX.fullmatch(suffix):
                return None
            if _is_prerelease(suffix):
                prerelease = suffix
            else:
                variant = suffix
        elif rest[0].isalpha():
            # PEP 440 style "1.0rc1", "2.0b3": only a pre-release keyword may follow directly.
            direct = _DIRECT_PRE.fullmatch(rest)
            if direct is None or direct.group("word").lower() not in PRERELEASE_KEYWORDS:
                return None
            prerelease = rest
        else:
            return None
    return Version(
        raw=text,
        parts=parts,
        prerelease=prerelease,
        variant=variant,
        build=build,
        v_prefix=m.group("v") is not None,
    )


def tag_sort_key(tag: str) -> tuple[object, ...]:
    """A total order over all strings: non-versions (natural order) below versions."""
    version = parse_version(tag)
    if version is None:
        return (0, natural_key(tag), tag)
    return (1, version.key)


_OPERATORS = (">=", "<=", "==", "!=", ">", "<", "=")
_COMPARATOR = re.compile(r"\s*(?P<op>>=|<=|==|!=|>|<|=)?\s*(?P<version>\S+)\s*")


@dataclass(frozen=True, slots=True)
class Comparator:
    op: str
    version: Version

    def accepts(self, version: Version) -> bool:
        left, right = version.precedence, self.version.precedence
        if self.op == ">=":
            return left >= right
        if self.op == "<=":
            return left <= right
        if self.op == ">":
            return left > right
        if self.op == "<":
            return left < right
        if self.op == "!=":
            return left != right
        return left == right

    def __str__(self) -> str:
        return f"{self.op}{self.version.raw}"


@dataclass(frozen=True, slots=True)
class VersionRange:
    """Comparators joined by commas, all of which must hold (``">=1.0, <2.0"``).

    Variants and build metadata do not take part: ``1.25.3-alpine`` is inside ``>=1.25``.
    Tags that are not versions are never inside a range.
    """

    comparators: tuple[Comparator, ...]

    def contains(self, tag: str | Version) -> bool:
        version = parse_version(tag) if isinstance(tag, str) else tag
        if version is None:
            return False
        return all(c.accepts(version) for c in self.comparators)

    def __str__(self) -> str:
        return ", ".join(str(c) for c in self.comparators)


def parse_range(text: str) -> VersionRange:
    """Parse ``">=1.0, <2.0"``; operators ``>= <= > < =`` (and ``== !=``); comma means AND."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("empty semver range")
    comparators: list[Comparator] = []
    for piece in text.split(","):
        m = _COMPARATOR.fullmatch(piece)
        if m is None:
            if piece.strip() and len(piece.split()) > 1:
                raise ConfigError(
                    f"invalid semver range {text!r}: separate comparators with a comma"
                )
            raise ConfigError(f"invalid semver range {text!r}: empty comparator")
        op = m.group("op") or "="
        version = parse_version(m.group("version"))
        if version is None or version.variant is not None:
            raise ConfigError(
                f"invalid semver range {text!r}: {m.group('version')!r} is not a version "
                f"(operators: {' '.join(_OPERATORS[:5])})"
            )
        comparators.append(Comparator("==" if op == "=" else op, version))
    return VersionRange(tuple(comparators))


__all__ = [
    "PRERELEASE_KEYWORDS",
    "Comparator",
    "Version",
    "VersionRange",
    "natural_key",
    "parse_range",
    "parse_version",
    "tag_sort_key",
]
