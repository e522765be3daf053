"""Per-principal sliding-window request caps, as GHCR applies them.

GHCR counts every request of a principal (reads, writes and token requests alike) in a sliding
window and answers 429 TOOMANYREQUESTS past the cap (observed on ghcr.io: one 2000 requests per
minute cap per authenticated principal, as ocync's GHCR guide says). `now` is a parameter,
so tests drive it with trio's MockClock or plain numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .quirks import RateLimit

# Without a configured cap the windows are still tracked (for `peak_window` in the stats)
# over GHCR's documented minute.
DEFAULT_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0


@dataclass(slots=True)
class PrincipalWindow:
    times: deque[float]
    requests: int = 0
    throttled: int = 0
    peak_window: int = 0


class SlidingWindowLimiter:
    """One window per principal; ``check`` records a request and says whether it may proceed."""

    def __init__(self, limit: RateLimit | None, *, count_rejected: bool = False) -> None:
        self.limit = limit
        self.count_rejected = count_rejected
        self.window = limit.window if limit else DEFAULT_WINDOW
        self.principals: dict[str, PrincipalWindow] = {}

    def check(self, principal: str, now: float) -> Decision:
        state = self.principals.get(principal)
        if state is None:
            state = self.principals[principal] = PrincipalWindow(deque())
        times = state.times
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        state.requests += 1
        if self.limit is not None and len(times) >= self.limit.count:
            state.throttled += 1
            # The oldest request leaves the window at times[0] + window.
            retry_after = max(0.0, times[0] + self.window - now)
            if self.count_rejected:
                times.append(now)
                state.peak_window = max(state.peak_window, len(times))
            return Decision(False, retry_after)
        times.append(now)
        if len(times) > state.peak_window:
            state.peak_window = len(times)
        return Decision(True)

    def reset(self) -> None:
        """Zero the counters (the windows keep running, as GHCR's would)."""
        for state in self.principals.values():
            state.requests = state.throttled = 0
            state.peak_window = len(state.times)

    def statistics(self) -> dict[str, dict[str, int]]:
        return {
            name: {"requests": s.requests, "throttled": s.throttled, "peak_window": s.peak_window}
            for name, s in sorted(self.principals.items())
        }

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter({self.limit}, principals={len(self.principals)})"
