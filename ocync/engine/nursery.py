"""Run a batch of tasks in one nursery; the first failure cancels the rest and is raised as
itself, not wrapped in an ExceptionGroup (trio's strict groups), so callers can handle our
own error types with a plain ``except``. Concurrency is bounded by an optional limiter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import trio


async def run_all(
    jobs: Iterable[Callable[[], Awaitable[None]]], *, limit: int | None = None
) -> None:
    """Run every job concurrently (at most ``limit`` at a time, started in order)."""
    failures: list[Exception] = []
    limiter = trio.CapacityLimiter(limit) if limit else None

    async with trio.open_nursery() as nursery:

        async def one(job: Callable[[], Awaitable[None]]) -> None:
            try:
                if limiter is None:
                    await job()
                else:
                    async with limiter:
                        await job()
            except Exception as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()

        for job in jobs:
            nursery.start_soon(one, job)
            # trio.CapacityLimiter is FIFO: starting in order keeps the order of admission.
    if failures:
        raise failures[0]


__all__ = ["run_all"]
