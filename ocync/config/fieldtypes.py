"""What every config model shares: the strict frozen base model and the field types
(counts, lists given as one item, durations, sizes) with their JSON schema."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from ocync.config.units import format_duration, format_size, parse_duration, parse_size

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # registry, group and profile names


def one_or_many(value: object) -> object:
    """``x`` -> ``[x]``; a number stays one item so the error says "expected a string"."""
    if value is None or isinstance(value, list | dict):
        return value
    return [value]


def _no_bool(value: object) -> object:
    """YAML's ``true`` is not the count 1 (pydantic's lax int would take it)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got boolean {str(value).lower()}")
    return value


def _as_duration(value: object) -> object:
    return parse_duration(value)


def _as_size(value: object) -> object:
    return parse_size(value)


# Counts: whole numbers (``${VAR}`` strings still convert), never a boolean. The bound sits
# before the validator so that the JSON schema says "minimum".
Count = Annotated[int, Field(ge=0), BeforeValidator(_no_bool)]
PositiveCount = Annotated[int, Field(ge=1), BeforeValidator(_no_bool)]
StrList = Annotated[
    list[str],
    BeforeValidator(one_or_many),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    ),
]
Duration = Annotated[
    float,
    BeforeValidator(_as_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": r"^([0-9.]+(ms|s|m|h|d))+$"}, {"type": "number"}],
            "description": "a duration: 30s, 15m, 12h, 1d, 1h30m or seconds",
        }
    ),
]
Size = Annotated[
    int,
    BeforeValidator(_as_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}],
            "description": "a size: 2GiB, 512MiB, 500MB or bytes",
        }
    ),
]


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_patterns(values: list[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    for v in values:
        if not v.strip():
            raise ValueError(f"empty {what}")
    return values


__all__ = [
    "NAME",
    "ConfigModel",
    "Count",
    "Duration",
    "PositiveCount",
    "Size",
    "StrList",
    "check_patterns",
    "one_or_many",
]
