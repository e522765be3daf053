"""Adaptive rate control per principal: pure AIMD window and token bucket, signal parsing, and
the trio controller every request goes through (issue 4).

The trio side (``limiter``) is imported on first use, so importing a pure module such as
``ocync.ratelimit.bucket`` (config validation does) does not load trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ocync.ratelimit.aimd import AIMDWindow, WindowStatistics
from ocync.ratelimit.bucket import RateCap, TokenBucket, bucket_for_cap, estimate_cap, parse_rate
from ocync.ratelimit.signals import ThrottleSignal, budget_from_headers, throttle_signal

if TYPE_CHECKING:
    from ocync.ratelimit.limiter import (
        ControllerRegistry,
        ControllerStatistics,
        KeyStatistics,
        Permit,
        PrincipalController,
    )

_LIMITER_NAMES = frozenset(
    {"ControllerRegistry", "ControllerStatistics", "KeyStatistics", "Permit", "PrincipalController"}
)


def __getattr__(name: str) -> Any:
    if name in _LIMITER_NAMES:
        return getattr(importlib.import_module("ocync.ratelimit.limiter"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AIMDWindow",
    "ControllerRegistry",
    "ControllerStatistics",
    "KeyStatistics",
    "Permit",
    "PrincipalController",
    "RateCap",
    "ThrottleSignal",
    "TokenBucket",
    "WindowStatistics",
    "budget_from_headers",
    "bucket_for_cap",
    "estimate_cap",
    "parse_rate",
    "throttle_signal",
]
