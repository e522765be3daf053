"""Adaptive rate control per principal: pure AIMD window and token bucket, signal parsing, and
the trio controller every request goes through (issue 4)."""

from ocync.ratelimit.aimd import AIMDWindow, WindowStatistics
from ocync.ratelimit.bucket import RateCap, TokenBucket, bucket_for_cap, estimate_cap, parse_rate
from ocync.ratelimit.limiter import (
    ControllerRegistry,
    ControllerStatistics,
    KeyStatistics,
    Permit,
    PrincipalController,
)
from ocync.ratelimit.signals import ThrottleSignal, budget_from_headers, throttle_signal

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
