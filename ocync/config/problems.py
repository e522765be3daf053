"""Where in a config file something is wrong, and how to say it.

A location is a path of keys and list indexes (``("mappings", 3, "tags", "latest")``); every
stage (YAML, ``${VAR}`` expansion, the models, the cross-checks) reports :class:`Problem` values
that the loader turns into ``FILE:LINE: mappings[3].tags.latest: message`` lines.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass

Loc = tuple[str | int, ...]
# Keys whose values are never echoed in a message and are redacted by `ocync config expand`.
SECRET_KEYS = frozenset({"password", "token"})


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` or an empty string."""
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close and len(word) >= 4:
        # "required" -> "require_artifacts": a long shared prefix is a good hint too.
        close = [o for o in options if len(os.path.commonprefix([o, word])) >= 0.7 * len(word)]
    return f" (did you mean `{close[0]}`?)" if close else ""


__all__ = ["SECRET_KEYS", "Loc", "Problem", "format_loc", "suggest"]
