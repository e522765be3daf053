"""Which rate cap a principal is paced by, as a pure state machine (``now`` is a parameter).

A cap is configured (config ``rate_limit``, ``--rate-limit``), documented (the registry
profile's), announced in a 429 (GHCR: "allowed: 2000/minute"), or estimated from our own
successes before the first hinted 429 (``bucket.estimate_cap``); an estimate is then lowered
when it is disproved and probed upwards while callers wait for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ocync.ratelimit.aimd import DEFAULT_EPOCH
from ocync.ratelimit.bucket import DEFAULT_HEADROOM, RateCap, TokenBucket, bucket_for_cap
from ocync.ratelimit.bucket import estimate_cap as estimate_from_successes
from ocync.ratelimit.signals import ThrottleSignal

CapSource = Literal["configured", "documented", "announced", "estimated"]

# An estimated cap is a guess: lowered by 10% when a request it paced is throttled, raised by 5%
# after each throttle-free period in which callers were waiting for it (a gentle rate AIMD, so a
# low first guess does not stick for the whole run).
ESTIMATE_DECREASE = 0.9
ESTIMATE_PROBE = 0.05
# ... at most this often: an estimate made late in a run spans the whole run as its "period".
ESTIMATE_PROBE_EVERY = 2.0


def adopts_announced_cap(source: str | None, current: RateCap | None, announced: RateCap) -> bool:
    """Whether a cap announced in a 429 replaces the current one.

    Precedence: a configured cap (config ``rate_limit``, ``--rate-limit``) always holds; an
    announced cap lower than the profile's documented one wins over it (a registry that says
    "allowed: 100/10s" enforces that, whatever its documentation says); a documented cap holds
    against a higher announcement; announced and estimated caps follow the latest announcement.
    """
    if source == "configured":
        return False
    if source == "documented" and current is not None:
        return announced.rate < current.rate
    return current != announced


def replaces_shared_cap(
    current: RateCap | None, current_source: CapSource | None, cap: RateCap, source: CapSource
) -> bool:
    """Whether a cap a later user of a shared principal brings replaces the current one: when
    there is none, when it is stricter, or when it is configured and the current one is not."""
    return (
        current is None
        or cap.rate < current.rate
        or (source == "configured" and current_source != "configured")
    )


@dataclass(frozen=True, slots=True)
class CapStatistics:
    """A snapshot of a ``CapLearner``."""

    cap: str | None
    cap_source: str | None
    # Successes counted while no cap was known (the estimate's evidence).
    successes: int
    estimates: int
    decreases: int
    probes: int
    announcements: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CapLearner:
    """The cap in force and where it came from; ``on_*`` return a new cap to apply, or None.

    ``adopt_announced`` False ignores caps announced in 429s; ``estimate`` False never infers
    one (the AIMD window and the hint pauses then act on their own).
    """

    __slots__ = (
        "_announcements",
        "_cap",
        "_cap_epoch_end",
        "_cap_set_at",
        "_decreases",
        "_epoch",
        "_estimates",
        "_first_success_at",
        "_probe_after",
        "_probes",
        "_source",
        "_successes",
        "adopt_announced",
        "estimate",
    )

    def __init__(
        self, *, adopt_announced: bool = True, estimate: bool = True, epoch: float = DEFAULT_EPOCH
    ) -> None:
        self.adopt_announced = adopt_announced
        self.estimate = estimate
        self._epoch = epoch
        self._cap: RateCap | None = None
        self._source: CapSource | None = None
        self._cap_set_at = -math.inf
        self._cap_epoch_end = -math.inf
        self._probe_after = math.inf
        self._first_success_at: float | None = None
        self._successes = 0
        self._estimates = self._decreases = self._probes = self._announcements = 0

    @property
    def cap(self) -> RateCap | None:
        return self._cap

    @property
    def source(self) -> CapSource | None:
        return self._source

    def set(self, cap: RateCap | None, source: CapSource, now: float | None) -> None:
        """Pace by ``cap`` from ``now`` on (None: before the run's clock exists)."""
        self._cap = cap
        self._source = None if cap is None else source
        self._cap_set_at = -math.inf if now is None else now

    def share(self, rate_share: float) -> float:
        """The part of the cap this process may use: an estimate was made from our own
        successes, which are already our share; every other cap is the principal's."""
        return 1.0 if self._source == "estimated" else rate_share

    def bucket(
        self, *, rate_share: float, headroom: float = DEFAULT_HEADROOM, now: float | None = None
    ) -> TokenBucket | None:
        """A token bucket for the cap in force (None without a cap)."""
        if self._cap is None:
            return None
        return bucket_for_cap(
            self._cap, rate_share=self.share(rate_share), headroom=headroom, now=now
        )

    def on_success(self, now: float, admitted_at: float, *, waiting: bool) -> RateCap | None:
        """A metered request admitted at ``admitted_at`` succeeded.

        ``waiting``: callers are queued for the bucket while the gate is not paused. An
        estimate that held for a whole period with callers waiting is probed 5% higher.
        """
        if self._cap is None:
            if self._first_success_at is None or admitted_at < self._first_success_at:
                self._first_success_at = admitted_at
            self._successes += 1
            return None
        if self._source == "estimated" and waiting and now >= self._probe_after:
            return self._probe(now, self._cap)
        return None

    def on_throttle(self, now: float, signal: ThrottleSignal, admitted_at: float) -> RateCap | None:
        """Adopt an announced cap, estimate one, or lower an estimate the registry disproved."""
        announced = signal.allowed if self.adopt_announced else None
        if announced is not None:
            if not adopts_announced_cap(self._source, self._cap, announced):
                return None
            self._announcements += 1
            self.set(announced, "announced", now)
            return announced
        if self._cap is None:
            return self._estimate(now, signal.retry_after)
        if (
            self._source == "estimated"
            and admitted_at >= self._cap_set_at
            and now >= self._cap_epoch_end
        ):
            return self._decrease(now, self._cap)
        return None

    def _estimate(self, now: float, retry_after: float | None) -> RateCap | None:
        """The first hinted throttle without a cap: infer one from our successes so far."""
        if not self.estimate or retry_after is None or self._first_success_at is None:
            return None
        estimate = estimate_from_successes(
            self._successes, self._first_success_at, now, retry_after
        )
        if estimate is None:
            return None
        self._estimates += 1
        self.set(estimate, "estimated", now)
        self._cap_epoch_end = now + self._epoch
        self._probe_after = now + retry_after + min(estimate.period, ESTIMATE_PROBE_EVERY)
        return estimate

    def _decrease(self, now: float, cap: RateCap) -> RateCap:
        """A request paced by the estimate was throttled: the estimate was too high.
        Multiplicative decrease, once per epoch (the same rule as the window's)."""
        lower = RateCap(max(1, math.floor(cap.count * ESTIMATE_DECREASE)), cap.period)
        self._decreases += 1
        self.set(lower, "estimated", now)
        self._cap_epoch_end = now + self._epoch
        self._probe_after = now + 2 * min(cap.period, ESTIMATE_PROBE_EVERY)
        return lower

    def _probe(self, now: float, cap: RateCap) -> RateCap:
        """Callers wait on an estimated cap that held for a whole period: try 5% more."""
        higher = RateCap(cap.count + max(1, math.ceil(cap.count * ESTIMATE_PROBE)), cap.period)
        self._probes += 1
        self.set(higher, "estimated", now)
        self._probe_after = now + min(cap.period, ESTIMATE_PROBE_EVERY)
        return higher

    def statistics(self) -> CapStatistics:
        return CapStatistics(
            cap=None if self._cap is None else str(self._cap),
            cap_source=self._source,
            successes=self._successes,
            estimates=self._estimates,
            decreases=self._decreases,
            probes=self._probes,
            announcements=self._announcements,
        )

    def __repr__(self) -> str:
        return f"<CapLearner cap={self._cap} source={self._source}>"


__all__ = [
    "ESTIMATE_DECREASE",
    "ESTIMATE_PROBE",
    "ESTIMATE_PROBE_EVERY",
    "CapLearner",
    "CapSource",
    "CapStatistics",
    "adopts_announced_cap",
    "replaces_shared_cap",
]
