"""Adaptive rate control per principal: pure machines (AIMD window, token bucket, gate, cap
learner, backoff), signal parsing, and the trio controller every request goes through.

The trio side (``limiter``) is imported on first use, so importing a pure module such as
``ocync.ratelimit.bucket`` (config validation does) does not load trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ocync.ratelimit.aimd import AIMDWindow, WindowStatistics
from ocync.ratelimit.backoff import backoff_delay, hint_delay
from ocync.ratelimit.bucket import RateCap, TokenBucket, bucket_for_cap, estimate_cap, parse_rate
from ocync.ratelimit.caplearner import CapLearner, CapStatistics, adopts_announced_cap
from ocync.ratelimit.gate import GateState, GateStatistics
from ocync.ratelimit.signals import ThrottleSignal, budget_from_headers, throttle_signal
from ocync.ratelimit.statistics import ControllerStatistics, KeyStatistics

if TYPE_CHECKING:
    from ocync.ratelimit.limiter import ControllerRegistry, Permit, PrincipalController

_LIMITER_NAMES = frozenset({"ControllerRegistry", "Permit", "PrincipalController"})


def __getattr__(name: str) -> Any:
    if name in _LIMITER_NAMES:
        return getattr(importlib.import_module("ocync.ratelimit.limiter"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AIMDWindow",
    "CapLearner",
    "CapStatistics",
    "ControllerRegistry",
    "ControllerStatistics",
    "GateState",
    "GateStatistics",
    "KeyStatistics",
    "Permit",
    "PrincipalController",
    "RateCap",
    "ThrottleSignal",
    "TokenBucket",
    "WindowStatistics",
    "adopts_announced_cap",
    "backoff_delay",
    "budget_from_headers",
    "bucket_for_cap",
    "estimate_cap",
    "hint_delay",
    "parse_rate",
    "throttle_signal",
]
