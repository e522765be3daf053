"""Run a batch of tasks in one nursery; the first failure cancels the rest and is raised as
itself, not wrapped in an ExceptionGroup (trio's strict groups), so callers can handle our
own error types with a plain ``except``. Concurrency is bounded by an optional limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import trio


async def run_all(
    jobs: Iterable[Callable[[], Awaitable[None]]], *, limit: int | None = None
) -> None:
    """Run every job concurrently (at most ``limit`` at a time, started in order).

    With a ``limit`` a job's task is only started once a slot is free and ``jobs`` is read
    as slots free up: 10,000 mappings cost ``limit`` waiting tasks, not 10,000 (each trio task
    and its frames is a few KiB; stress/scale.py measured the difference in peak RSS)."""
    failures: list[Exception] = []
    slots = trio.Semaphore(limit) if limit else None

    async with trio.open_nursery() as nursery:

        async def one(job: Callable[[], Awaitable[None]]) -> None:
            try:
                await job()
            except Exception as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()
            finally:
                if slots is not None:
                    slots.release()

        for job in jobs:
            if slots is not None:
                await slots.acquire()  # cancelled with the nursery when a job failed
            nursery.start_soon(one, job)
    if failures:
        raise failures[0]


__all__ = ["run_all"]
