"""How long to wait before trying again (pure: the randomness is a parameter).

``backoff_delay`` is exponential backoff with "equal jitter" for a retry the server gave no hint
for; ``hint_delay`` and ``clamp_hint`` turn a server's hint (Retry-After, a budget reset) into a
wait we are willing to make.
"""

from __future__ import annotations

import math
import random

from ocync.ratelimit.signals import ThrottleSignal

# Backoff without a hint: 0.5 s doubling to 30 s, with "equal jitter" (half fixed, half random;
# AWS architecture blog "Exponential Backoff And Jitter"). regsync's 30 s maximum per wait.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
# Never trust a hint beyond this (a Retry-After of hours would look like a hang).
MAX_HINT = 300.0
# Added to a server's hint: its clock and ours tick apart, and GHCR's hint is to the millisecond.
HINT_MARGIN = 0.005


def backoff_delay(
    attempt: int,
    rng: random.Random,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_MAX,
) -> float:
    """Seconds to wait before retry ``attempt`` (1-based) when the server gave no hint.

    The ceiling doubles from ``base`` up to ``cap``; the wait is half the ceiling plus a random
    part of the other half, so that clients throttled together do not retry together.
    """
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2.0 + rng.random() * ceiling / 2.0


def clamp_hint(seconds: float | None) -> float | None:
    """A server's "wait this long", clamped to [0, MAX_HINT] plus a small margin; None if absent."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(MAX_HINT, max(0.0, seconds)) + HINT_MARGIN


def hint_delay(signal: ThrottleSignal) -> float | None:
    """The throttle's hint, clamped and with a small margin; None when there is none."""
    return clamp_hint(signal.retry_after)


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "HINT_MARGIN",
    "MAX_HINT",
    "backoff_delay",
    "clamp_hint",
    "hint_delay",
]
