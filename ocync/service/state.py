"""What the health endpoints answer, decided from the loop's state. Pure: ``now`` is a
parameter (the loop's monotonic clock), so liveness and readiness are tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Liveness never fails sooner than this after the loop last showed a sign of life: one
# blob of several GiB may take minutes with no request finishing.
DEFAULT_LIVENESS_FLOOR = 600.0
# Readiness turns 503 after this many failed cycles in a row (one failure is a blip).
DEFAULT_UNREADY_AFTER = 3


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return 200 if self.ok else 503


@dataclass(slots=True)
class ServiceState:
    """Mutated by the loop only; read by the health server of the same trio run."""

    period: float  # the schedule's seconds between cycles
    liveness_floor: float = DEFAULT_LIVENESS_FLOOR
    unready_after: int = DEFAULT_UNREADY_AFTER
    cycles: int = 0  # finished, whatever their outcome
    good_cycles: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    config_error: str = ""  # the first line of the config's problem, while it is invalid
    draining: bool = False
    running_since: float | None = None  # the current cycle's start, None between cycles
    last_activity: float = 0.0  # start, end or progress of a cycle, or the service's start
    next_start: float | None = None  # when the loop means to start the next cycle

    def cycle_started(self, now: float) -> None:
        self.running_since = now
        self.last_activity = now

    def progressed(self, now: float) -> None:
        self.last_activity = now

    def cycle_finished(self, now: float, *, fatal: str = "") -> None:
        self.running_since = None
        self.last_activity = now
        self.cycles += 1
        if fatal:
            self.consecutive_failures += 1
            self.last_error = fatal
        else:
            self.good_cycles += 1
            self.consecutive_failures = 0
            self.last_error = ""

    def liveness(self, now: float) -> Verdict:
        """Alive while a cycle started, progressed or ended within max(3 x period, floor) of
        ``now``; while waiting, the window counts from the planned start (a long failure
        backoff is not a wedge)."""
        window = max(3 * self.period, self.liveness_floor)
        since = self.last_activity
        if self.running_since is None and self.next_start is not None:
            since = max(since, self.next_start)
        if now - since <= window:
            return Verdict(True, {"status": "alive"})
        return Verdict(False, {"status": "wedged", "idle_seconds": round(now - since, 1),
                               "window_seconds": window})

    def readiness(self) -> Verdict:
        if self.draining:
            return Verdict(False, {"status": "draining"})
        if self.config_error:
            return Verdict(False, {"status": "config_invalid", "error": self.config_error})
        if self.consecutive_failures >= self.unready_after:
            return Verdict(False, {"status": "failing", "consecutive_failures":
                                   self.consecutive_failures, "error": self.last_error})
        if not self.good_cycles:
            status = "first_cycle_pending" if not self.cycles else "failing"
            reason: dict[str, Any] = {"status": status}
            if self.last_error:
                reason["error"] = self.last_error
            return Verdict(False, reason)
        return Verdict(True, {"status": "ready", "cycles": self.cycles})


__all__ = ["ServiceState", "Verdict"]
