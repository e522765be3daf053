"""The principal's gate as a pure state machine: pauses and the token bucket (``now`` is a parameter).

A throttle pauses new admissions until the server's hint expires (or for a backoff that grows
with the number of throttled congestion epochs in a row); a budget header that no longer covers
the requests in flight pauses them until the budget resets. Either drains the bucket.
``ocync.ratelimit.limiter`` queues the waiting tasks and sleeps for ``delay(now)``.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from ocync.ratelimit.backoff import backoff_delay, clamp_hint, hint_delay
from ocync.ratelimit.bucket import TokenBucket
from ocync.ratelimit.signals import ThrottleSignal


@dataclass(frozen=True, slots=True)
class GateStatistics:
    """A snapshot of a ``GateState``."""

    paused_until: float
    paused_seconds: float
    consecutive_throttles: int
    budget_pauses: int
    bucket_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GateState:
    """Pause and token bucket in front of a principal's windows.

    ``delay(now)`` is how long the head of the queue must still wait; ``admit(now)`` takes its
    token. ``on_throttle`` and ``on_budget`` return the pause they decided (0.0 for none).
    """

    __slots__ = ("_budget_pauses", "_bucket", "_consecutive", "_paused_seconds", "_paused_until")

    def __init__(self) -> None:
        self._paused_until = -math.inf
        self._paused_seconds = 0.0
        self._consecutive = 0
        self._budget_pauses = 0
        self._bucket: TokenBucket | None = None

    @property
    def paused_until(self) -> float:
        return self._paused_until

    @property
    def consecutive_throttles(self) -> int:
        return self._consecutive

    @property
    def budget_pauses(self) -> int:
        return self._budget_pauses

    @property
    def bucket(self) -> TokenBucket | None:
        return self._bucket

    def set_bucket(self, bucket: TokenBucket | None, now: float | None) -> None:
        """Pace by ``bucket`` from ``now`` on (None: no bucket).

        A new cap must not hand out a fresh burst: the replacement keeps the tokens the old
        bucket had (at most its own capacity). Without a ``now`` (the gate is set up before the
        run's clock exists) the new bucket starts as built, its clock starting at first use.
        """
        if bucket is not None and self._bucket is not None and now is not None:
            tokens = min(bucket.capacity, self._bucket.available(now))
            bucket = TokenBucket(bucket.rate, bucket.capacity, tokens=tokens, now=now)
        self._bucket = bucket

    def delay(self, now: float) -> float:
        """Seconds until the gate lets the next request through (<= 0: now)."""
        delay = self._paused_until - now
        if self._bucket is not None:
            delay = max(delay, self._bucket.delay(now))
        return delay

    def admit(self, now: float) -> None:
        """A request passes the gate: it takes a token."""
        if self._bucket is not None:
            self._bucket.try_take(now)

    def paused_for(self, now: float) -> float:
        """Seconds until the pause ends (0.0 when there is none; the bucket is not counted)."""
        return max(0.0, self._paused_until - now)

    def on_success(self) -> None:
        self._consecutive = 0

    def on_throttle(
        self, now: float, signal: ThrottleSignal, rng: random.Random, *, new_epoch: bool = True
    ) -> float:
        """Pause new admissions until the hint expires, so that the other tasks do not pile into
        the same wall; without a hint, back off by the number of throttled epochs in a row
        (``new_epoch`` False: this throttle answers a request of the same volley)."""
        if new_epoch:
            self._consecutive += 1
        delay = hint_delay(signal)
        if delay is None:
            delay = backoff_delay(self._consecutive, rng)
        self._pause(now, now + delay)
        return delay

    def on_budget(
        self,
        now: float,
        remaining: int,
        reset: float | None,
        in_flight: int,
        rng: random.Random,
    ) -> float:
        """A budget header: close the gate before the budget runs out.

        The requests in flight will spend budget too, so the gate closes when ``remaining`` no
        longer covers them; it opens again when the budget resets (or after a backoff).
        """
        if remaining > max(1, in_flight):
            return 0.0
        delay = clamp_hint(reset)
        if delay is None:
            delay = backoff_delay(1, rng)
        if self._pause(now, now + delay):
            self._budget_pauses += 1
        return delay

    def _pause(self, now: float, until: float) -> bool:
        """Extend the pause to ``until`` and drain the bucket; False if already paused longer."""
        extended = until > self._paused_until
        if extended:
            start = max(now, self._paused_until)
            self._paused_seconds += max(0.0, until - start)
            self._paused_until = until
        if self._bucket is not None:
            self._bucket.drain(now)
        return extended

    def statistics(self) -> GateStatistics:
        return GateStatistics(
            paused_until=self._paused_until,
            paused_seconds=self._paused_seconds,
            consecutive_throttles=self._consecutive,
            budget_pauses=self._budget_pauses,
            bucket_rate=None if self._bucket is None else self._bucket.rate,
        )

    def __repr__(self) -> str:
        return (
            f"<GateState paused_until={self._paused_until:.3f} "
            f"consecutive_throttles={self._consecutive} budget_pauses={self._budget_pauses} "
            f"bucket={self._bucket!r}>"
        )


__all__ = ["GateState", "GateStatistics"]
