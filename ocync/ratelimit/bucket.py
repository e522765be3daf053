"""Token bucket for documented rate caps (pure: the time is a parameter), plus ``parse_rate``.

Registries state caps as COUNT per PERIOD over a sliding window (GHCR: 2000 requests per
minute per principal, docs.github.com "GitHub Packages" rate limits). A bucket of capacity B
refilled at r admits at most ``B + r*t`` requests in any interval of length t; ``bucket_for_cap``
picks B and r so that no window of length PERIOD ever holds more than COUNT (times the
process's ``rate_share``), with a little headroom for network jitter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ocync.errors import ConfigError

# Keep 4% of the cap unused: a request admitted at t may reach the server up to
# (1 - headroom) * period later than its neighbours (event-loop stalls, connection set-up)
# without two of them landing in one server-side window; at 600/6s that is 0.24 s of slack.
DEFAULT_HEADROOM = 0.96
# Default burst: 1% of the count, plus one (at least 2 from 50 up). A waiter woken late by the event loop finds the
# tokens that accrued meanwhile instead of losing them to a full one-token bucket (measured:
# 2 ms of wake-up lateness per token cost 15% of a 100/s cap); its cost, paid out of the
# refill rate, is at most 1% of the cap.
DEFAULT_BURST_FRACTION = 0.01
# Tokens closer than this to a whole token count as one (floating-point refill arithmetic).
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateCap:
    """At most ``count`` requests in any window of ``period`` seconds; ``burst`` = bucket size."""

    count: int
    period: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"rate limit count must be >= 1, got {self.count}")
        if not (self.period > 0 and math.isfinite(self.period)):
            raise ConfigError(f"rate limit period must be > 0 seconds, got {self.period}")
        if self.burst is not None and self.burst < 1:
            raise ConfigError(f"rate limit burst must be >= 1, got {self.burst}")

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.count / self.period

    def scaled(self, share: float) -> RateCap:
        """This cap's share for one of several processes using the same principal."""
        if not 0 < share <= 1:
            raise ConfigError(f"rate share must be in (0, 1], got {share}")
        count = max(1, math.floor(self.count * share))
        burst = None if self.burst is None else max(1, min(self.burst, count))
        return RateCap(count, self.period, burst)

    def __str__(self) -> str:
        text = f"{self.count}/{self.period:g}s"
        return text if self.burst is None else f"{text},burst={self.burst}"


_UNITS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_RATE_RE = re.compile(
    r"^\s*(?P<count>\d+)\s*/\s*(?P<num>\d+(?:\.\d+)?|\.\d+)?\s*(?P<unit>[a-z]*)\s*"
    r"(?:,\s*burst\s*=\s*(?P<burst>\d+)\s*)?$",
    re.IGNORECASE,
)


def parse_rate(text: str) -> RateCap:
    """Parse ``COUNT/PERIOD[,burst=N]``: "2000/60s", "600/6s", "10/1m", "5/500ms", "2000/minute"."""
    match = _RATE_RE.match(text) if isinstance(text, str) else None
    if match is None or (not match["unit"] and match["num"] is None):
        raise ConfigError(
            f"invalid rate {text!r}: expected a rate limit COUNT/PERIOD[,burst=N]"
            " such as 2000/60s, 10/1m or 2000/minute"
        )
    unit = match["unit"].lower()
    if unit not in _UNITS:
        raise ConfigError(f"invalid rate {text!r}: unknown rate limit period unit {match['unit']!r}")
    number = float(match["num"]) if match["num"] is not None else 1.0
    burst = int(match["burst"]) if match["burst"] is not None else None
    try:
        return RateCap(int(match["count"]), number * _UNITS[unit], burst)
    except ConfigError as exc:
        raise ConfigError(f"invalid rate {text!r}: {exc}") from None


class TokenBucket:
    """A token bucket: ``capacity`` tokens at most, refilled at ``rate`` tokens per second.

    Pure: every method takes ``now``. The first call (or ``now`` at construction) starts the
    clock; the bucket starts with ``tokens`` (default: full).
    """

    __slots__ = ("_capacity", "_last", "_rate", "_taken", "_tokens")

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        tokens: float | None = None,
        now: float | None = None,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"token rate must be > 0, got {rate}")
        if capacity < 1:
            raise ValueError(f"bucket capacity must be >= 1, got {capacity}")
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._tokens = self._capacity if tokens is None else min(self._capacity, max(0.0, tokens))
        self._last = now
        self._taken = 0

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def capacity(self) -> float:
        return self._capacity

    @property
    def taken(self) -> int:
        return self._taken

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until one token is available (0.0 if one is there now)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self._rate

    def try_take(self, now: float) -> bool:
        """Take one token if there is one; return whether it was taken."""
        self._refill(now)
        if self._tokens + _EPSILON < 1.0:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        self._taken += 1
        return True

    def drain(self, now: float) -> None:
        """Empty the bucket (the server told us the budget is spent)."""
        self._refill(now)
        self._tokens = 0.0

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        if self._last is None or now > self._last:
            self._last = now

    def __repr__(self) -> str:
        return (
            f"<TokenBucket rate={self._rate:.3f}/s capacity={self._capacity:g} "
            f"tokens={self._tokens:.3f} taken={self._taken}>"
        )


def bucket_for_cap(
    cap: RateCap,
    *,
    rate_share: float = 1.0,
    headroom: float = DEFAULT_HEADROOM,
    now: float | None = None,
) -> TokenBucket:
    """A bucket that never admits more than ``cap.count * rate_share`` in any window ``cap.period``.

    The n-th admission in a half-open window [a, a+P) needs ``B + r*(t_n - a) >= n`` with
    ``t_n < a + P``, so ``n < B + r*P``. With ``r = (C*h - (B - 1)) / P`` that bounds the window to
    ``ceil(C*h) <= C`` (C = the share of the count, h = headroom): the bucket's burst is paid for
    out of the rate, and a sliding-window server never sees more than C.
    """
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom}")
    share = cap.scaled(rate_share)
    count = share.count * headroom
    burst = share.burst
    if burst is None:
        burst = 1 + math.floor(share.count * DEFAULT_BURST_FRACTION)
        if share.count >= 50:
            burst = max(burst, 2)  # one spare token already absorbs most lateness (<= 2%)
    rate = (count - (burst - 1)) / share.period
    if rate <= count / share.period * 0.1:
        # A burst that eats most of the window leaves no steady rate; cap it.
        burst = max(1, math.floor(count * 0.5))
        rate = (count - (burst - 1)) / share.period
    return TokenBucket(rate, burst, tokens=float(burst), now=now)


def estimate_cap(
    successes: int, first_success_at: float, now: float, retry_after: float
) -> RateCap | None:
    """A cap inferred from the first throttle of a run whose registry did not announce one.

    A sliding-window server that throttles at ``now`` and hints that a slot frees after
    ``retry_after`` holds its whole window: if the window opened with our first request, it
    spans ``P = now + retry_after - first_success_at`` and holds our ``successes``. Requests of
    other clients of the principal only make P longer or our share smaller, so the estimate
    errs low (and a fixed-window server resets at ``now + retry_after`` too).
    """
    period = now + retry_after - first_success_at
    if successes < 1 or not (period > 0 and math.isfinite(period)):
        return None
    return RateCap(successes, period)


__all__ = [
    "DEFAULT_BURST_FRACTION",
    "DEFAULT_HEADROOM",
    "RateCap",
    "TokenBucket",
    "bucket_for_cap",
    "estimate_cap",
    "parse_rate",
]
