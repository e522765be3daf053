"""``${VAR}`` substitution in config values, and its inverse for ``ocync config expand``.

``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$$`` for a literal ``$``, as in
docker compose. Expansion records the raw text of secrets so that a dump can keep the
``${VAR}`` a secret came from instead of printing it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ocync.config.problems import SECRET_KEYS, Loc, Problem
from ocync.errors import ConfigError

REDACTED = "<redacted>"

_SUBST = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_VAR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>.*))?", re.DOTALL)


def substitute(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$$``.

    Unset (or empty, for ``:-`` and ``:?``) variables without a default are errors: a
    silently empty token is worse than a loud config error. ConfigError carries the reason.
    """

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        body = m.group("body")
        if body is None:
            raise ConfigError("unterminated `${` (write `$$` for a literal $)")
        var = _VAR.fullmatch(body)
        if var is None:
            raise ConfigError(
                f"bad substitution `${{{body}}}`: use ${{VAR}}, ${{VAR:-default}} or "
                "${VAR:?message}"
            )
        name, op, arg = var.group("name"), var.group("op"), var.group("arg")
        value = environ.get(name)
        if op == ":-":
            return value if value else substitute(arg, environ)
        if op == ":?":
            if not value:
                raise ConfigError(f"${{{name}}} is not set: {arg or 'required'}")
            return value
        if value is None:
            raise ConfigError(
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            )
        return value

    return _SUBST.sub(repl, text)


def expand(
    data: Any, environ: Mapping[str, str], problems: list[Problem], raw_secrets: dict[Loc, str],
    loc: Loc = (),
) -> Any:
    """``data`` with every string substituted; a bad one stays as is, with a Problem appended.
    The text of secret keys (``token``, ``password``) as written goes into ``raw_secrets``."""
    if isinstance(data, dict):
        return {k: expand(v, environ, problems, raw_secrets, loc + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand(v, environ, problems, raw_secrets, loc + (i,)) for i, v in enumerate(data)]
    if isinstance(data, str):
        if loc and loc[-1] in SECRET_KEYS:
            raw_secrets[loc] = data
        if "$" not in data:
            return data
        try:
            return substitute(data, environ)
        except ConfigError as exc:
            problems.append(Problem(loc, str(exc)))
            return data
    return data


def escape_dollars(data: Any, secrets: Mapping[Loc, str], *, show_secrets: bool, loc: Loc = ()) -> Any:
    """The inverse of :func:`expand` for a dump: ``$`` -> ``$$``, so it re-expands to itself.
    Secrets keep the ``${VAR}`` they came from (re-validates identically), else are redacted."""
    if isinstance(data, dict):
        return {
            k: escape_dollars(v, secrets, show_secrets=show_secrets, loc=loc + (k,))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            escape_dollars(v, secrets, show_secrets=show_secrets, loc=loc + (i,))
            for i, v in enumerate(data)
        ]
    if isinstance(data, str):
        if loc and loc[-1] in SECRET_KEYS and not show_secrets:
            raw = secrets.get(loc, "")
            return raw if "${" in raw else REDACTED
        return data.replace("$", "$$")
    return data


__all__ = ["REDACTED", "escape_dollars", "expand", "substitute"]
