"""pydantic's validation errors said the way a config author needs them: one line each.

An unknown key gets a suggestion (a close name, or the section it belongs in); a wrong type
says what was expected and what was found; secrets are never echoed.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel

from ocync.config.models import (
    ArtifactsConfig,
    Config,
    Credentials,
    DefaultsConfig,
    GlobalConfig,
    MappingConfig,
    RegistryConfig,
    TagsConfig,
)
from ocync.config.problems import SECRET_KEYS, Loc, suggest


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _model_at(loc: Loc) -> type[BaseModel] | None:
    tp: Any = Config
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not isinstance(part, str):
                return None
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[part].annotation
        elif typing.get_origin(tp) is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [(f.alias or n) for n, f in model.model_fields.items()]


_ALL_MODELS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("global", GlobalConfig),
    ("a registry", RegistryConfig),
    ("credentials", Credentials),
    ("a mapping", MappingConfig),
    ("defaults", DefaultsConfig),
    ("tags", TagsConfig),
    ("artifacts", ArtifactsConfig),
)


def _unknown_key_message(loc: Loc) -> str:
    key = str(loc[-1])
    if len(key) > 60:
        key = key[:57] + "..."
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key `{key}`"
    valid = _keys_of(model)
    hint = suggest(key, valid)
    if not hint:
        homes = [name for name, m in _ALL_MODELS if m is not model and key in _keys_of(m)]
        elsewhere = {k: name for name, m in reversed(_ALL_MODELS) if m is not model
                     for k in _keys_of(m)}
        close = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.75)
        if homes:
            hint = f" (`{key}` belongs in {homes[0]})"
        elif close:
            hint = f" (did you mean `{close[0]}`? it belongs in {elsewhere[close[0]]})"
        else:
            hint = f" (valid keys: {', '.join(valid)})"
    return f"unknown key `{key}`{hint}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return type(value).__name__


# Wrong types: what was expected, then ", got <what it was>".
_EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
}
_BOUNDS = frozenset({"greater_than_equal", "greater_than", "less_than_equal", "less_than"})


def pydantic_message(err: Mapping[str, Any]) -> str:
    """One pydantic error (``loc`` already without pydantic's ``[key]`` parts) as a message."""
    kind = err["type"]
    loc: Loc = tuple(err["loc"])
    value = err.get("input")
    secret = any(part in SECRET_KEYS or part == "credentials" for part in loc)
    got = "a value" if secret else _describe(value)
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key_message(loc)
    if kind == "missing":
        return f"`{loc[-1]}` is required" if loc else "required"
    if kind == "string_type":
        quoted = " (quote it)" if isinstance(value, int | float) and not isinstance(value, bool) else ""
        return f"expected a string, got {got}{quoted}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        hint = suggest(value, [e.strip() for e in expected.split(",")]) if isinstance(value, str) else ""
        return f"must be one of {expected}, got {got}{hint}"
    if kind in _BOUNDS:
        return f"{err['msg'].lower()}, got {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "assertion_error":
        return str(err["msg"]).removeprefix("Assertion failed, ")
    return f"{err['msg']}" + ("" if secret else f" (got {got})")

__all__ = ["pydantic_message"]
