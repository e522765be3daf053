"""The request ledger of a client: every request counted once, by kind, method and status,
with bytes in and out per kind; :class:`ClientStatistics` is its frozen view, and views add
up (``sum(stats, ClientStatistics())``) for a pool or a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _added(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    total = Counter(a)
    total.update(b)
    return dict(total)


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """Request counters of one client, or the sum of several (``+``)."""

    requests: int = 0
    by_kind: Mapping[str, int] = field(default_factory=dict)
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_kind_status: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    bytes_in_by_kind: Mapping[str, int] = field(default_factory=dict)
    bytes_out_by_kind: Mapping[str, int] = field(default_factory=dict)
    throttled: int = 0
    retries: int = 0
    transport_errors: int = 0
    tokens_fetched: int = 0
    by_method: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_method": dict(self.by_method),
            "by_kind": dict(self.by_kind),
            "by_status": dict(self.by_status),
            "by_kind_status": {k: dict(v) for k, v in self.by_kind_status.items()},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bytes_in_by_kind": dict(self.bytes_in_by_kind),
            "bytes_out_by_kind": dict(self.bytes_out_by_kind),
            "throttled": self.throttled,
            "retries": self.retries,
            "transport_errors": self.transport_errors,
            "tokens_fetched": self.tokens_fetched,
        }

    def __add__(self, other: ClientStatistics) -> ClientStatistics:
        kinds = self.by_kind_status.keys() | other.by_kind_status.keys()
        return ClientStatistics(
            requests=self.requests + other.requests,
            by_kind=_added(self.by_kind, other.by_kind),
            by_status=_added(self.by_status, other.by_status),
            by_kind_status={
                k: _added(self.by_kind_status.get(k, {}), other.by_kind_status.get(k, {})) for k in kinds
            },
            bytes_in=self.bytes_in + other.bytes_in,
            bytes_out=self.bytes_out + other.bytes_out,
            bytes_in_by_kind=_added(self.bytes_in_by_kind, other.bytes_in_by_kind),
            bytes_out_by_kind=_added(self.bytes_out_by_kind, other.bytes_out_by_kind),
            throttled=self.throttled + other.throttled,
            retries=self.retries + other.retries,
            transport_errors=self.transport_errors + other.transport_errors,
            tokens_fetched=self.tokens_fetched + other.tokens_fetched,
            by_method=_added(self.by_method, other.by_method),
        )

    @classmethod
    def merge(cls, stats: list[ClientStatistics]) -> ClientStatistics:
        return sum(stats, cls())


class RequestLedger:
    """Counts every request once: (kind, status or "error"), method, and bytes per kind."""

    def __init__(self) -> None:
        self.by_kind_status: dict[str, Counter[str]] = {}
        self.by_method: Counter[str] = Counter()
        self.bytes_in: Counter[str] = Counter()
        self.bytes_out: Counter[str] = Counter()
        self.throttled = 0
        self.retries = 0
        self.transport_errors = 0

    def record(self, method: str, kind: str, status: int | None, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """One request that was sent; ``status`` None when no answer came (a transport error)."""
        self.by_kind_status.setdefault(kind, Counter())[str(status) if status else "error"] += 1
        self.by_method[method] += 1
        self.add_bytes(kind, bytes_in, bytes_out)

    def add_bytes(self, kind: str, bytes_in: int = 0, bytes_out: int = 0) -> None:
        if bytes_in:
            self.bytes_in[kind] += bytes_in
        if bytes_out:
            self.bytes_out[kind] += bytes_out

    def statistics(self, tokens_fetched: int = 0) -> ClientStatistics:
        by_kind = {k: sum(v.values()) for k, v in self.by_kind_status.items()}
        by_status: Counter[str] = Counter()
        for statuses in self.by_kind_status.values():
            by_status.update(statuses)
        return ClientStatistics(
            requests=sum(by_kind.values()),
            by_kind=by_kind,
            by_status=dict(by_status),
            by_kind_status={k: dict(v) for k, v in self.by_kind_status.items()},
            bytes_in=sum(self.bytes_in.values()),
            bytes_out=sum(self.bytes_out.values()),
            bytes_in_by_kind=dict(self.bytes_in),
            bytes_out_by_kind=dict(self.bytes_out),
            throttled=self.throttled,
            retries=self.retries,
            transport_errors=self.transport_errors,
            tokens_fetched=tokens_fetched,
            by_method=dict(self.by_method),
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<RequestLedger requests={s.requests} throttled={s.throttled} retries={s.retries}>"


__all__ = ["ClientStatistics", "RequestLedger"]
