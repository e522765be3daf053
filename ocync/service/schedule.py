"""When the next cycle starts: an interval or a cron expression, and the backoff after failed
cycles. Pure: every function takes ``now`` (wall-clock seconds since the epoch) as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from croniter import croniter  # type: ignore[import-untyped]  # ships no stubs

from ocync.errors import ConfigError


class Schedule(Protocol):
    def next_start(self, finished: float) -> float:
        """The earliest start of the cycle after one that ended at ``finished``."""
        ...

    def period(self, now: float) -> float:
        """Seconds between two cycles around ``now`` (liveness and heartbeat windows)."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """``--interval S``: S seconds from the end of one cycle to the start of the next, so
    cycles never overlap however long one runs."""

    seconds: float

    def next_start(self, finished: float) -> float:
        return finished + self.seconds

    def period(self, now: float) -> float:
        return self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """``--schedule CRON`` (five fields, evaluated in UTC): the first slot after the previous
    cycle ended; a slot missed while a cycle ran is skipped, never run twice."""

    expression: str

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression):
            raise ConfigError(f"--schedule: not a cron expression: {self.expression!r}")

    def _after(self, when: float) -> float:
        start = datetime.fromtimestamp(when, tz=UTC)
        return float(croniter(self.expression, start).get_next(float))

    def next_start(self, finished: float) -> float:
        return self._after(finished)

    def period(self, now: float) -> float:
        first = self._after(now)
        return self._after(first) - first

    def describe(self) -> str:
        return f"on {self.expression!r} (UTC)"


# Kubernetes' CrashLoopBackOff starts at 10s and doubles up to 5 minutes; a failed cycle costs
# no restart, so the first retry comes sooner.
DEFAULT_BACKOFF_BASE = 2.0
DEFAULT_BACKOFF_MAX = 300.0


@dataclass(frozen=True, slots=True)
class FailureBackoff:
    """The pause after ``failures`` consecutive failed cycles: ``base`` doubled per failure,
    capped at ``maximum``, times a jitter factor in [0.5, 1) ("equal jitter": pods that failed
    together spread out, and the delay still never shrinks while failures continue)."""

    base: float = DEFAULT_BACKOFF_BASE
    maximum: float = DEFAULT_BACKOFF_MAX

    def delay(self, failures: int, jitter: float) -> float:
        """``jitter`` is a number in [0, 1) from the caller's (seeded) random source."""
        if failures <= 0:
            return 0.0
        raw = min(self.maximum, self.base * 2.0 ** min(failures - 1, 64))
        return raw * (0.5 + 0.5 * jitter)


def next_cycle_at(
    schedule: Schedule, backoff: FailureBackoff, finished: float, failures: int, jitter: float
) -> float:
    """The start of the next cycle: the schedule's, pushed later by the failure backoff (a
    failing registry is never asked more often than the schedule says)."""
    start = schedule.next_start(finished)
    if failures:
        start = max(start, finished + backoff.delay(failures, jitter))
    return start


__all__ = [
    "CronSchedule",
    "FailureBackoff",
    "IntervalSchedule",
    "Schedule",
    "next_cycle_at",
]
