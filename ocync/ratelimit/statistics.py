"""Snapshots of a ``PrincipalController`` (frozen values, no trio): what ``statistics()`` returns
and the JSON the run report and the stress scenarios print.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ocync.ratelimit.aimd import WindowStatistics


@dataclass(frozen=True, slots=True)
class KeyStatistics:
    """One window key of a controller."""

    window: WindowStatistics
    in_flight: int
    waiting: int
    requests: int

    def to_dict(self) -> dict[str, Any]:
        # The window's figures, flattened next to the queue's.
        return {
            **self.window.to_dict(),
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "requests": self.requests,
        }


@dataclass(frozen=True, slots=True)
class ControllerStatistics:
    """A snapshot of a ``PrincipalController``."""

    name: str
    windows: Mapping[str, KeyStatistics]
    requests: int
    unmetered: int
    throttles: int
    wait_seconds: float
    throttle_wait_seconds: float
    paused_seconds: float
    budget_pauses: int
    cap: str | None
    bucket_rate: float | None
    rate_share: float
    # Where the cap came from: "configured", "documented" (the registry profile's), "announced"
    # (the 429 said), "estimated", or None.
    cap_source: str | None = field(default=None)

    @property
    def learned_cap(self) -> bool:
        return self.cap_source in ("announced", "estimated")

    def to_dict(self) -> dict[str, Any]:
        # Not ``asdict``: the JSON flattens each window, adds ``learned_cap`` and keeps this
        # key order, which the report and the stress results were written with.
        return {
            "name": self.name,
            "requests": self.requests,
            "unmetered": self.unmetered,
            "throttles": self.throttles,
            "wait_seconds": round(self.wait_seconds, 3),
            "throttle_wait_seconds": round(self.throttle_wait_seconds, 3),
            "paused_seconds": round(self.paused_seconds, 3),
            "budget_pauses": self.budget_pauses,
            "cap": self.cap,
            "cap_source": self.cap_source,
            "learned_cap": self.learned_cap,
            "bucket_rate": None if self.bucket_rate is None else round(self.bucket_rate, 3),
            "rate_share": self.rate_share,
            "windows": {key: stats.to_dict() for key, stats in sorted(self.windows.items())},
        }


__all__ = ["ControllerStatistics", "KeyStatistics"]
