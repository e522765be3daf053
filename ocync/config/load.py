"""Loading a config file: compose, expand, validate, cross-check; and the way back out.

Every problem of a stage becomes one line ``FILE:LINE: mappings[3].tags.latest: message``;
all of a stage's problems are raised together as one ConfigError (exit 3). ``expanded_data``
and ``json_schema`` serve ``ocync config expand`` and ``ocync config schema``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from ocync.config.crosscheck import cross_check
from ocync.config.envsubst import escape_dollars, expand
from ocync.config.messages import pydantic_message
from ocync.config.models import Config
from ocync.config.problems import Loc, Problem, format_loc
from ocync.config.units import format_size
from ocync.config.yamlsource import Document, compose
from ocync.errors import ConfigError

log = logging.getLogger("ocync.config")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config plus what ``expand`` needs to redact secrets faithfully."""

    config: Config
    filename: str
    raw_secrets: Mapping[Loc, str]
    warnings: tuple[str, ...] = ()


# Problems reported per file: beyond that the file is probably not an ocync config at all.
_MAX_PROBLEMS = 20


def _raise(filename: str, doc: Document, problems: list[Problem]) -> NoReturn:
    ordered = sorted(problems, key=lambda p: doc.line_of(p.loc))
    lines = [
        f"{filename}:{doc.line_of(p.loc)}: {format_loc(p.loc) + ': ' if p.loc else ''}{p.message}"
        for p in ordered[:_MAX_PROBLEMS]
    ]
    if len(ordered) > _MAX_PROBLEMS:
        lines.append(f"{filename}: ... and {len(ordered) - _MAX_PROBLEMS} more problems "
                     "(is this an ocync config?)")
    raise ConfigError("\n".join(lines))


def _validate(filename: str, doc: Document, data: Any) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "[key]")
            problems.append(Problem(loc, pydantic_message({**err, "loc": loc})))
        _raise(filename, doc, problems)


def _deprecation_warnings(filename: str, config: Config) -> tuple[str, ...]:
    aliased = [n for n, r in config.registries.items() if r.auth_type == "ghcr"]
    if not aliased:
        return ()
    return (
        f"{filename}: auth_type ghcr is deprecated, use docker_config or static_token "
        f"(registries: {', '.join(aliased)})",
    )


def parse_config_text(
    text: str, filename: str = "<config>", environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Parse, expand, validate and cross-check; ConfigError with one line per problem."""
    env = os.environ if environ is None else environ
    doc = compose(text, filename)
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{filename}:{doc.lines[()]}: the config must be a mapping "
            "(global, registries, target_groups, defaults, mappings)"
        )
    raw_secrets: dict[Loc, str] = {}
    data = expand(doc.data, env, doc.problems, raw_secrets)
    if doc.problems:
        _raise(filename, doc, doc.problems)
    config = _validate(filename, doc, data)
    problems = cross_check(config)
    if problems:
        _raise(filename, doc, problems)
    warnings = _deprecation_warnings(filename, config)
    for w in warnings:
        log.warning("%s", w)
    return LoadedConfig(config, filename, raw_secrets, warnings)


# A config with thousands of mappings is well under a MiB; 16 MiB leaves room for generated ones.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file (ConfigError, exit 3, on any problem)."""
    return load_config_file(path, environ).config


def load_config_file(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    name = str(path)
    try:
        with Path(path).open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)  # bounded: /dev/zero or a wrong file is no config
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{name}: larger than {format_size(MAX_CONFIG_BYTES)}; not a config file?")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{name}: cannot read: {reason}") from None
    return parse_config_text(text, name, environ)


def expanded_data(loaded: LoadedConfig, *, show_secrets: bool = False) -> dict[str, Any]:
    """The resolved config as plain data, ``$`` escaped so it re-validates to the same model."""
    data = loaded.config.model_dump(mode="json", by_alias=True, exclude_none=True)
    result: dict[str, Any] = escape_dollars(data, loaded.raw_secrets, show_secrets=show_secrets)
    return result


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


__all__ = [
    "MAX_CONFIG_BYTES",
    "LoadedConfig",
    "expanded_data",
    "json_schema",
    "load_config",
    "load_config_file",
    "parse_config_text",
]
