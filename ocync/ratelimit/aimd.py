"""The AIMD concurrency window as a pure state machine: no I/O, the time is a parameter.

Additive increase (``window += 1/window`` per success while the window is full: TCP congestion
avoidance, RFC 5681 3.1, with RFC 7661's validation), multiplicative decrease (halve) at most
once per congestion epoch so that a volley of 429s answering requests sent together counts as
one congestion event, floor 1, cap ``max_concurrent``.
``ocync.ratelimit.limiter`` applies the limit with trio primitives.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Defaults of the rate-control design: start small (5), cap 50 concurrent requests, and a
# 100 ms congestion epoch (the 429s answering one volley of requests arrive within it).
DEFAULT_INITIAL_WINDOW = 5.0
DEFAULT_MAX_CONCURRENT = 50
DEFAULT_EPOCH = 0.1
WINDOW_FLOOR = 1.0


@dataclass(frozen=True, slots=True)
class WindowStatistics:
    """A snapshot of one AIMD window."""

    window: float
    limit: int
    min: float
    mean: float
    max: float
    successes: int
    throttles: int
    decreases: int

    def to_dict(self) -> dict[str, float | int]:
        # Fractions of a request are noise: three decimals.
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


class AIMDWindow:
    """Additive-increase / multiplicative-decrease window; ``limit`` is the allowed concurrency.

    ``on_success(now)`` and ``on_throttle(now)`` return the new window. A throttle opens a
    congestion epoch of ``epoch`` seconds; further throttles inside it do not shrink the window
    again. ``mean`` is time-weighted over the instants the machine was told about.
    """

    __slots__ = (
        "_cap",
        "_decreases",
        "_epoch",
        "_epoch_end",
        "_max",
        "_min",
        "_successes",
        "_throttles",
        "_weighted",
        "_elapsed",
        "_last_now",
        "_window",
    )

    def __init__(
        self,
        *,
        initial: float = DEFAULT_INITIAL_WINDOW,
        cap: int = DEFAULT_MAX_CONCURRENT,
        epoch: float = DEFAULT_EPOCH,
    ) -> None:
        if cap < 1:
            raise ValueError(f"window cap must be >= 1, got {cap}")
        if epoch < 0:
            raise ValueError(f"congestion epoch must be >= 0, got {epoch}")
        self._cap = float(cap)
        self._epoch = float(epoch)
        self._window = min(self._cap, max(WINDOW_FLOOR, float(initial)))
        self._epoch_end = -math.inf
        self._min = self._max = self._window
        self._successes = self._throttles = self._decreases = 0
        self._weighted = 0.0
        self._elapsed = 0.0
        self._last_now: float | None = None

    @property
    def window(self) -> float:
        return self._window

    @property
    def limit(self) -> int:
        """How many requests may be in flight: the window rounded down, at least 1."""
        return max(1, int(self._window))

    @property
    def cap(self) -> int:
        return int(self._cap)

    def in_epoch(self, now: float) -> bool:
        """True while a congestion epoch opened by a throttle is still running."""
        return now < self._epoch_end

    def on_success(self, now: float, *, limited: bool = True) -> float:
        """A request succeeded. ``limited`` says the window was the constraint (it was full):
        only then does it grow (RFC 7661 congestion window validation), so a window that a
        token bucket or a slow caller keeps half-empty does not swell to its cap unused."""
        self._advance(now)
        self._successes += 1
        if limited:
            self._set(min(self._cap, self._window + 1.0 / self._window))
        return self._window

    def on_throttle(self, now: float) -> float:
        self._advance(now)
        self._throttles += 1
        if now >= self._epoch_end:
            self._decreases += 1
            self._epoch_end = now + self._epoch
            self._set(max(WINDOW_FLOOR, self._window / 2.0))
        return self._window

    def statistics(self) -> WindowStatistics:
        mean = self._weighted / self._elapsed if self._elapsed > 0 else self._window
        return WindowStatistics(
            window=self._window,
            limit=self.limit,
            min=self._min,
            mean=mean,
            max=self._max,
            successes=self._successes,
            throttles=self._throttles,
            decreases=self._decreases,
        )

    def _advance(self, now: float) -> None:
        if self._last_now is not None and now > self._last_now:
            dt = now - self._last_now
            self._weighted += self._window * dt
            self._elapsed += dt
        if self._last_now is None or now > self._last_now:
            self._last_now = now

    def _set(self, window: float) -> None:
        self._window = window
        self._min = min(self._min, window)
        self._max = max(self._max, window)

    def __repr__(self) -> str:
        return (
            f"<AIMDWindow window={self._window:.2f} limit={self.limit} cap={int(self._cap)} "
            f"throttles={self._throttles} decreases={self._decreases}>"
        )


__all__ = [
    "DEFAULT_EPOCH",
    "DEFAULT_INITIAL_WINDOW",
    "DEFAULT_MAX_CONCURRENT",
    "WINDOW_FLOOR",
    "AIMDWindow",
    "WindowStatistics",
]
