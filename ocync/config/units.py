"""Durations, sizes and rates as written in a config file, parsed and formatted back.

Pure functions raising ValueError (which the models turn into a located problem). Rates use
the one grammar of the rate limiter and the profiles (:func:`ocync.ratelimit.bucket.parse_rate`).
"""

from __future__ import annotations

import re

from ocync.errors import ConfigError
from ocync.ratelimit.bucket import parse_rate

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_duration(value: object) -> float:
    """``"12h"``, ``"30m"``, ``"1h30m"``, ``"500ms"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 15m, 12h or 1d, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            return float(text)
        if text and re.fullmatch(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+", text):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError(f"expected a duration like 30s, 15m, 12h or 1d, got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 43200 -> ``12h``; round-trips through parse_duration."""
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    millis = seconds * 1000
    if millis.is_integer():
        return f"{int(millis)}ms"
    return repr(float(seconds))


_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
    "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip


def parse_size(value: object) -> int:
    """``"2GiB"``, ``"500MB"`` (decimal), ``"512Mi"``, ``"1g"`` (binary) or a byte count."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 2GiB or 500MB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size must not be negative")
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size like 2GiB, 512MiB or 500MB, got {value!r}")


def format_size(size: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def check_rate(text: str) -> str:
    """A rate limit in the one grammar the client and the profiles use (``parse_rate``)."""
    try:
        parse_rate(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return text.strip()


__all__ = ["check_rate", "format_duration", "format_size", "parse_duration", "parse_size"]
