"""A pull quota as a pure machine: what remains, what is reserved, what may still be sent.

Docker Hub counts manifest GETs ("pulls") per principal over a rolling window and says how many
remain in ``ratelimit-remaining`` on every answer, HEADs included (docs.docker.com "Docker Hub
pull usage and limits"). Images reserve the pulls they need before the first GET; a pull is sent
only from a reservation or from what is left free, so the quota is never overspent, and
``min_remaining`` pulls are always left for the cluster's own image pulls. ``now`` is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocync.ratelimit.signals import PullQuotaReading


@dataclass(frozen=True, slots=True)
class PullQuotaStatistics:
    remaining: int | None  # the registry's last word (None: not heard yet, or unlimited)
    limit: int | None
    window: float | None
    source: str
    min_remaining: int
    reserved: int
    in_flight: int
    pulls_sent: int
    refused: int  # pulls never sent because nothing was left
    unlimited: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "remaining": self.remaining, "limit": self.limit, "window": self.window,
            "source": self.source, "min_remaining": self.min_remaining, "reserved": self.reserved,
            "in_flight": self.in_flight, "pulls_sent": self.pulls_sent, "refused": self.refused,
            "unlimited": self.unlimited,
        }


class PullQuota:
    """One principal's pull quota at one registry, as far as this process knows it.

    Readings can arrive out of order (answers to concurrent requests): a reading replaces the
    known figure only when its request was sent after that figure arrived; otherwise the lower
    of the two stands (within one window the count only falls). Pulls reserved or in flight are
    kept apart from the figure, so a reading that already counts one only makes us stricter.
    """

    __slots__ = ("_horizon", "_in_flight", "_limit", "_observed_at", "_remaining", "_reserved",
                 "_source", "_tickets", "_unlimited", "_window", "min_remaining", "pulls_sent", "refused")

    def __init__(self, min_remaining: int = 0) -> None:
        if min_remaining < 0:
            raise ValueError(f"min_remaining must be 0 or more, not {min_remaining}")
        self.min_remaining = min_remaining
        self._remaining: int | None = None
        self._limit: int | None = None
        self._window: float | None = None
        self._source = ""
        self._observed_at: float | None = None
        self._unlimited = False
        self._tickets = 0
        self._horizon = 0  # tickets issued when the known figure arrived
        self._reserved = 0
        self._in_flight = 0
        self.pulls_sent = 0
        self.refused = 0

    # -- what is known -------------------------------------------------------------------------
    @property
    def known(self) -> bool:
        """Whether a reading (or its documented absence: unlimited) has been seen."""
        return self._remaining is not None or self._unlimited

    @property
    def remaining(self) -> int | None:
        """The registry's last figure less the pulls sent since and not yet answered."""
        if self._remaining is None:
            return None
        return max(0, self._remaining - self._in_flight)

    def available(self) -> int | None:
        """Pulls that may still be reserved (None: no limit known to apply)."""
        if self._remaining is None:
            return None
        return max(0, self._remaining - self._reserved - self._in_flight - self.min_remaining)

    def window_reset_by(self) -> float | None:
        """When every pull seen so far will have left the rolling window (None: unknown)."""
        if self._observed_at is None or self._window is None:
            return None
        return self._observed_at + self._window

    def describe(self) -> str:
        """The reason a deferred image gives: ``pull quota: N remaining, min_remaining M``."""
        remaining = self.remaining
        text = f"pull quota: {remaining if remaining is not None else 'unknown'} remaining"
        return f"{text}, min_remaining {self.min_remaining}"

    # -- observations ----------------------------------------------------------------------------
    def ticket(self) -> int:
        """Number a request that may bring a reading (taken when it is sent)."""
        self._tickets += 1
        return self._tickets

    def observe(self, ticket: int, reading: PullQuotaReading | None, now: float, *, ok: bool) -> None:
        """The answer to request ``ticket``: its reading, or None when it carried none (an
        ``ok`` answer without one means no limit applies: Docker Hub sends none then)."""
        if reading is None:
            if ok and self._remaining is None:
                self._unlimited = True
            return
        self._unlimited = False
        self._limit = reading.limit if reading.limit is not None else self._limit
        self._window = reading.window if reading.window is not None else self._window
        self._source = reading.source or self._source
        if self._remaining is None or ticket > self._horizon:
            self._remaining = reading.remaining
            self._observed_at = now
            self._horizon = self._tickets
        else:
            self._remaining = min(self._remaining, reading.remaining)

    # -- reservations and pulls ------------------------------------------------------------------
    def reserve(self, count: int) -> bool:
        """Set ``count`` pulls aside for one image; False (nothing set aside) if they do not fit."""
        available = self.available()
        if available is None:
            return True
        if count > available:
            return False
        self._reserved += count
        return True

    def release(self, count: int) -> None:
        """Give back reserved pulls that will not be sent."""
        self._reserved -= min(count, self._reserved)

    def send(self) -> int | None:
        """A pull is about to be sent: its ticket, or None when it must not be (no reservation
        and nothing free). Without a known limit every pull may go."""
        if self._remaining is not None:
            if self._reserved > 0:
                self._reserved -= 1
            elif self.available() == 0:
                self.refused += 1
                return None
            self._in_flight += 1
        self.pulls_sent += 1
        return self.ticket()

    def answered(self, ticket: int, reading: PullQuotaReading | None, now: float, *, ok: bool) -> None:
        """A pull sent with ``ticket`` ended (answered, or lost: then counted as spent)."""
        was_tracked = self._in_flight > 0
        if was_tracked:
            self._in_flight -= 1
        if reading is None and was_tracked and self._remaining is not None:
            self._remaining = max(0, self._remaining - 1)  # it may have counted: assume it did
        self.observe(ticket, reading, now, ok=ok)

    def statistics(self) -> PullQuotaStatistics:
        return PullQuotaStatistics(
            remaining=self.remaining, limit=self._limit, window=self._window, source=self._source,
            min_remaining=self.min_remaining, reserved=self._reserved, in_flight=self._in_flight,
            pulls_sent=self.pulls_sent, refused=self.refused, unlimited=self._unlimited,
        )

    def __repr__(self) -> str:
        return (f"<PullQuota remaining={self._remaining} reserved={self._reserved} "
                f"in_flight={self._in_flight} min_remaining={self.min_remaining}>")


__all__ = ["PullQuota", "PullQuotaStatistics"]
