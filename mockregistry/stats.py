"""The counters behind ``GET /_mock/stats`` (requests by kind and status, bytes, leaks, timeline).

Request kinds are the names ocync's client counts its requests under too, so a run's client and
mock counters compare kind by kind (tests/unit/test_boundaries.py keeps the two lists equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

KINDS = (
    "ping", "token", "blob_head", "blob_get", "upload_post", "upload_patch", "upload_put",
    "upload_get", "upload_delete", "mount", "manifest_head", "manifest_get", "manifest_put",
    "manifest_delete", "tags_list", "referrers", "catalog", "storage_get", "other",
)


@dataclass(slots=True)
class Stats:
    """Counters since start or the last reset; ``now`` values are seconds on one clock."""

    started: float
    requests_total: int = 0
    throttled: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    auth_leaks: int = 0
    digest_invalid: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    timeline: dict[int, list[int]] = field(default_factory=dict)

    def record(self, kind: str, status: int, bytes_in: int, bytes_out: int, now: float) -> None:
        self.requests_total += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        second = max(0, math.floor(now - self.started))
        slot = self.timeline.get(second)
        if slot is None:
            slot = self.timeline[second] = [0, 0]
        slot[0] += 1
        if status == 429:
            self.throttled += 1
            slot[1] += 1

    def take_back_bytes_out(self, unsent: int) -> None:
        """A response counted before it left stopped early: its unsent body bytes never went out."""
        self.bytes_out -= unsent

    def reset(self, now: float) -> None:
        self.started = now
        self.requests_total = self.throttled = self.bytes_in = self.bytes_out = 0
        self.auth_leaks = self.digest_invalid = 0
        self.by_kind.clear()
        self.by_status.clear()
        self.timeline.clear()

    def to_dict(self) -> dict[str, object]:
        last = max(self.timeline, default=-1)
        timeline = []
        for second in range(last + 1):
            requests, throttled = self.timeline.get(second, (0, 0))
            timeline.append({"t": second, "requests": requests, "throttled": throttled})
        return {
            "requests_total": self.requests_total,
            "by_kind": {k: self.by_kind.get(k, 0) for k in KINDS},
            "by_status": dict(sorted(self.by_status.items())),
            "throttled": self.throttled,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "auth_leaks": self.auth_leaks,
            "digest_invalid": self.digest_invalid,
            "timeline": timeline,
        }
