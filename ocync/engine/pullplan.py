"""Pull quotas in discovery: an image reserves the pulls (manifest GETs) it needs before its
first GET, in the order its tag was examined, and is deferred whole when they do not fit.

An image takes its turn after every earlier image has settled its own pulls (reserved them,
or found it needs none), so what fits is always a prefix of the usual order. The root's pull
is reserved first; an index then reserves one pull per child, and an index whose children do
not fit is deferred with that one pull spent (the only pull a deferral can waste). When
nothing is known yet, one manifest HEAD (not a pull on Docker Hub) reads the quota first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ocync.errors import PullQuotaExhausted
from ocync.ratelimit.pullquota import PullQuota, PullQuotaStatistics


@dataclass(frozen=True, slots=True)
class PullPlanStatistics:
    quota: PullQuotaStatistics
    images_deferred: int
    pulls_wasted: int  # pulls spent on images deferred after their first GET

    def to_dict(self) -> dict[str, object]:
        return {**self.quota.to_dict(), "images_deferred": self.images_deferred,
                "pulls_wasted": self.pulls_wasted}


class PullPlanner:
    """One source endpoint's pull quota, handed out to images in discovery order."""

    def __init__(self, quota: PullQuota) -> None:
        self.quota = quota
        self._open: set[int] = set()  # images examined whose pulls are not settled yet
        self._lot = trio.lowlevel.ParkingLot()
        self.deferred = 0
        self.wasted = 0  # pulls spent on images deferred afterwards (an index's root)

    def enter(self, seq: int) -> None:
        """Image ``seq`` is being examined (called in discovery order, before any await)."""
        self._open.add(seq)

    def settle(self, seq: int) -> None:
        """Image ``seq`` holds every pull it will send, or needs none: later images may go."""
        if seq in self._open:
            self._open.discard(seq)
            self._lot.unpark_all()

    async def wait_turn(self, seq: int) -> None:
        while self._open and min(self._open) < seq:
            await self._lot.park()

    async def reserve(self, seq: int, count: int,
                      probe: Callable[[], Awaitable[object]] | None = None, *, spent: int = 0) -> None:
        """Reserve ``count`` pulls for image ``seq`` or raise :class:`PullQuotaExhausted`
        (``spent``: pulls the image already used, wasted if it is deferred now)."""
        await self.wait_turn(seq)
        if not self.quota.known and probe is not None:
            await probe()
        if not self.quota.reserve(count):
            self.deferred += 1
            self.wasted += spent
            self.settle(seq)
            raise PullQuotaExhausted(f"deferred, needs {count} more pull(s): {self.quota.describe()}")

    def statistics(self) -> PullPlanStatistics:
        return PullPlanStatistics(self.quota.statistics(), self.deferred, self.wasted)

    def __repr__(self) -> str:
        return f"<PullPlanner {self.quota!r} open={len(self._open)} deferred={self.deferred}>"


class ImagePulls:
    """One image's side of the planner: reserve before each GET round, settle when known."""

    __slots__ = ("planner", "reserved", "seq", "started")

    def __init__(self, planner: PullPlanner, seq: int) -> None:
        self.planner = planner
        self.seq = seq
        self.reserved = 0
        self.started = 0  # GETs begun (each takes one reserved pull when sent)
        planner.enter(seq)

    async def reserve(self, count: int, probe: Callable[[], Awaitable[object]] | None = None) -> None:
        await self.planner.reserve(self.seq, count, probe, spent=self.started)
        self.reserved += count

    def settle(self) -> None:
        self.planner.settle(self.seq)

    def finish(self) -> None:
        """The image's discovery ended: give back what it reserved and never began."""
        self.planner.quota.release(max(0, self.reserved - self.started))
        self.reserved = self.started
        self.settle()


def image_pulls(source: object, seq: int) -> ImagePulls | None:
    """The image's pull handle when ``source`` plans a pull quota (registers its turn)."""
    planner = pull_planner_of(source)
    return None if planner is None else ImagePulls(planner, seq)


def pull_planner_of(source: object) -> PullPlanner | None:
    """The source endpoint's planner: registry endpoints whose profile has a pull quota carry
    one; other sources (in-memory test endpoints, image layouts) have none and are not planned."""
    planner = getattr(source, "pull_planner", None)
    return planner if isinstance(planner, PullPlanner) else None


__all__ = ["ImagePulls", "PullPlanner", "image_pulls", "pull_planner_of"]
