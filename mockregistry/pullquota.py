"""Docker Hub's pull quota: manifest GETs per principal over a rolling window.

docs.docker.com "Docker Hub pull usage and limits" (docs/manuals/docker-hub/usage/pulls.md):
a pull is a manifest GET (a HEAD, the "version check", and blob downloads do not count); the
limit is per user when authenticated and per IPv4 address (or IPv6 /64) when anonymous, over a
rolling window; every answer carries ``ratelimit-limit: 100;w=21600``,
``ratelimit-remaining: 76;w=21600`` and ``docker-ratelimit-source``; over the limit a manifest
GET gets 429 ``TOOMANYREQUESTS`` "You have reached your pull rate limit...". ``now`` is a
parameter (the registry's trio clock, like its request caps).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .quirks import RateLimit

# Docker Hub's 429 body text (docs.docker.com "View pull rate and limit").
PULL_LIMIT_MESSAGE = ("You have reached your pull rate limit. You may increase the limit by "
                      "authenticating and upgrading: https://www.docker.com/increase-rate-limits")


@dataclass(slots=True)
class PrincipalPulls:
    times: deque[float] = field(default_factory=deque)
    pulls: int = 0  # since the last stats reset
    refused: int = 0


class PullQuota:
    """One rolling window of pulls per principal; HEADs and blobs never reach it."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.principals: dict[str, PrincipalPulls] = {}

    def _state(self, principal: str, now: float) -> PrincipalPulls:
        state = self.principals.get(principal)
        if state is None:
            state = self.principals[principal] = PrincipalPulls()
        horizon = now - self.limit.window
        while state.times and state.times[0] <= horizon:
            state.times.popleft()
        return state

    def remaining(self, principal: str, now: float) -> int:
        return max(0, self.limit.count - len(self._state(principal, now).times))

    def allows(self, principal: str, now: float) -> bool:
        """Whether a manifest GET may be served now; a refusal is counted."""
        state = self._state(principal, now)
        if len(state.times) < self.limit.count:
            return True
        state.refused += 1
        return False

    def spend(self, principal: str, now: float) -> None:
        """A manifest GET was served: one pull."""
        state = self._state(principal, now)
        state.times.append(now)
        state.pulls += 1

    def headers(self, principal: str, source: str, now: float) -> list[tuple[str, str]]:
        """Docker Hub's three headers, as sent with every answer."""
        window = f"w={int(self.limit.window)}"
        return [
            ("ratelimit-limit", f"{self.limit.count};{window}"),
            ("ratelimit-remaining", f"{self.remaining(principal, now)};{window}"),
            ("docker-ratelimit-source", source),
        ]

    def reset(self) -> None:
        """Zero the counters; the windows keep running, as Docker Hub's would."""
        for state in self.principals.values():
            state.pulls = state.refused = 0

    def statistics(self, now: float) -> dict[str, dict[str, int]]:
        return {
            name: {"pulls": s.pulls, "refused": s.refused, "in_window": len(self._state(name, now).times),
                   "remaining": self.remaining(name, now)}
            for name, s in sorted(self.principals.items())
        }

    def __repr__(self) -> str:
        return f"PullQuota({self.limit}, principals={len(self.principals)})"
