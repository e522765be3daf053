"""run_all: every job runs, the first failure is raised as itself, and with a limit the jobs
are read and started only as slots free up (counted, never timed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
import trio
import trio.testing

from ocync.engine.nursery import run_all

Job = Callable[[], Awaitable[None]]


class Counting:
    """Jobs that count how many were read from the iterable, running, and done."""

    def __init__(self, n: int, *, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.read = self.running = self.peak_running = self.done = 0
        self.peak_read_ahead = 0  # jobs read but not finished, at most
        self.started: list[int] = []

    def jobs(self) -> Iterator[Job]:
        for i in range(self.n):
            self.read += 1
            self.peak_read_ahead = max(self.peak_read_ahead, self.read - self.done)
            yield lambda i=i: self._job(i)

    async def _job(self, i: int) -> None:
        self.started.append(i)
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            await trio.sleep(1 + i % 3)
            if i == self.fail_at:
                raise ValueError(f"job {i}")
        finally:
            self.running -= 1
            self.done += 1


@pytest.mark.parametrize("limit", [pytest.param(None, id="unlimited"), pytest.param(1, id="one"),
                                   pytest.param(5, id="five")])
def test_every_job_runs_in_order_within_the_limit(limit: int | None) -> None:
    counting = Counting(200)
    trio.run(lambda: run_all(counting.jobs(), limit=limit), clock=trio.testing.MockClock(autojump_threshold=0))
    assert counting.done == 200
    assert sorted(counting.started) == list(range(200))
    if limit is None:
        assert counting.peak_running == 200
    else:
        assert counting.peak_running == limit
        # the iterable is read lazily: `limit` jobs running and the next one waiting for a
        # slot, never more (a task each for every job would read all 200 at once)
        assert counting.peak_read_ahead == limit + 1
    if limit == 1:
        assert counting.started == list(range(200))  # admitted (and so started) in order


def test_first_failure_is_raised_and_stops_reading_jobs() -> None:
    counting = Counting(1000, fail_at=7)
    with pytest.raises(ValueError, match="job 7"):
        trio.run(lambda: run_all(counting.jobs(), limit=4), clock=trio.testing.MockClock(autojump_threshold=0))
    assert counting.running == 0
    assert counting.read < 20  # jobs after the failure are never read, let alone started
