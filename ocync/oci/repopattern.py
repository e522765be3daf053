"""Repository patterns of a mapping (``from: "team/*"``, ``"team/**"``) and target naming.

Pure: the engine feeds in the names the source's catalog lists (distribution-spec "Listing
Repositories", ``GET /v2/_catalog``); these functions say which match, which an ``exclude``
glob drops, and where each lands (``to: "mirror/team/*"`` keeps the matched suffix).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

# distribution/reference regexp.go: one path component of a repository name.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
WILDCARDS = ("*", "**")


def is_pattern(text: str) -> bool:
    return "*" in text


@dataclass(frozen=True, slots=True)
class RepoPattern:
    """``prefix`` + one more component (``*``) or any number of them (``**``)."""

    prefix: str  # "" (the whole catalog) or "team/" (ends with a slash)
    deep: bool

    @classmethod
    def parse(cls, text: str) -> RepoPattern:
        """ValueError naming what is wrong unless ``text`` is ``[path/]*`` or ``[path/]**``."""
        *head, last = text.split("/")
        if last not in WILDCARDS or any("*" in c for c in head):
            raise ValueError(
                f"{text!r}: a pattern ends with /* (one more path component) or /** (any depth), "
                "with no other wildcard"
            )
        for component in head:
            if not _COMPONENT.fullmatch(component):
                raise ValueError(f"{text!r}: {component!r} is not a repository path component")
        return cls("".join(f"{c}/" for c in head), last == "**")

    def match(self, repository: str) -> str | None:
        """The suffix ``repository`` has under the pattern (None: it does not match)."""
        if not repository.startswith(self.prefix):
            return None
        suffix = repository[len(self.prefix):]
        if not suffix or (not self.deep and "/" in suffix):
            return None
        return suffix

    def __str__(self) -> str:
        return self.prefix + ("**" if self.deep else "*")


def excluded(repository: str, globs: Iterable[str]) -> bool:
    """``exclude:`` globs match the whole source repository path (``*`` crosses ``/``)."""
    return any(fnmatchcase(repository, g) for g in globs)


def target_repository(to: str, suffix: str) -> str:
    """``to``'s final ``*`` (or ``**``) replaced by the matched suffix."""
    head, _, _ = to.rpartition("/")
    return f"{head}/{suffix}" if head else suffix


__all__ = ["WILDCARDS", "RepoPattern", "excluded", "is_pattern", "target_repository"]
