"""The heartbeat line: what the cycles since the last one did (images synced, skipped and
failed, requests, 429s). One per cycle, or one an hour when cycles come more often than every
five minutes, so a service left running for months logs a bounded number of lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ocync.engine.report import ImageStatus, RunReport

# Cycles closer together than this are summed into hourly heartbeats.
FREQUENT = 300.0
HOURLY = 3600.0


class _Outcome(Protocol):
    @property
    def outcome(self) -> str: ...

    @property
    def report(self) -> RunReport | None: ...


@dataclass(frozen=True, slots=True)
class HeartbeatLine:
    text: str
    fields: dict[str, Any]


@dataclass(slots=True)
class Heartbeat:
    period: float
    last: float | None = None  # wall time of the last line
    totals: dict[str, float] = field(default_factory=dict)

    def add(self, outcome: _Outcome, seconds: float, started: float, period: float) -> None:
        self.period = period
        t = self.totals
        t["cycles"] = t.get("cycles", 0) + 1
        t[f"cycles_{outcome.outcome}"] = t.get(f"cycles_{outcome.outcome}", 0) + 1
        t["seconds"] = t.get("seconds", 0.0) + seconds
        report = outcome.report
        if report is not None:
            for key, status in (("synced", ImageStatus.SYNCED), ("skipped", ImageStatus.SKIPPED),
                                ("failed", ImageStatus.FAILED)):
                t[key] = t.get(key, 0) + report.count(status)
            t["requests"] = t.get("requests", 0) + report.requests
            t["throttled"] = t.get("throttled", 0) + report.throttled
        if self.last is None:
            self.last = started - HOURLY  # the first cycle always gets its line

    def due(self, now: float) -> HeartbeatLine | None:
        """The line to log now, if one is due (the totals restart after it)."""
        every = HOURLY if self.period < FREQUENT else 0.0
        if not self.totals or (self.last is not None and now - self.last < every):
            return None
        t = {k: (round(v, 3) if isinstance(v, float) else int(v)) for k, v in self.totals.items()}
        fields = {
            "cycles": int(t.get("cycles", 0)),
            "failed_cycles": int(t.get("cycles_failed", 0)),
            "synced": int(t.get("synced", 0)),
            "skipped": int(t.get("skipped", 0)),
            "failed": int(t.get("failed", 0)),
            "requests": int(t.get("requests", 0)),
            "throttled": int(t.get("throttled", 0)),
            "duration": round(float(self.totals.get("seconds", 0.0)), 3),
        }
        text = (
            f"heartbeat: {fields['cycles']} cycle(s) ({fields['failed_cycles']} failed); images "
            f"{fields['synced']} synced, {fields['skipped']} skipped, {fields['failed']} failed; "
            f"{fields['requests']} requests, {fields['throttled']} throttled (429)"
        )
        self.last = now
        self.totals = {}
        return HeartbeatLine(text, fields)


__all__ = ["Heartbeat", "HeartbeatLine"]
