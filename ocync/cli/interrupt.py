"""SIGINT/SIGTERM for the one-shot commands (copy, tags, analyze, auth check, expand).

trio turns SIGINT into KeyboardInterrupt by raising it wherever the main thread happens to
be; when that is a weakref callback or a finaliser (seen under load: ``WeakSet._remove``),
Python reports "Exception ignored" and the interrupt is lost while the command keeps waiting
on a registry that hangs. These commands therefore receive the signals in a task instead
(``trio.open_signal_receiver``), cancel their work, and raise KeyboardInterrupt from the main
task once the work is cancelled; the CLI turns it into its one line and exit 1.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")

# The last signal that interrupted the process (SIGTERM arrives as SIGINT, see ocync.cli.main).
received = {"signal": "SIGINT"}


async def _cancellable(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    outcome: list[T] = []
    caught: list[str] = []
    failure: list[Exception] = []

    async def watch(nursery: trio.Nursery, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                caught.append(signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                return

    async with trio.open_nursery() as nursery:
        await nursery.start(watch, nursery)
        try:
            outcome.append(await fn(*args))
        except Exception as exc:  # raised as itself below, not in the nursery's group
            failure.append(exc)
        nursery.cancel_scope.cancel()
    if caught:  # a failure while being cancelled is the interrupt's doing
        received["signal"] = caught[0]
        raise KeyboardInterrupt  # raised here, by the main task: never lost in a finaliser
    if failure:
        raise failure[0]
    return outcome[0]


def run_interruptible(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``trio.run(fn, *args)``; a SIGINT/SIGTERM cancels it and raises KeyboardInterrupt."""
    return trio.run(_cancellable, fn, args)


__all__ = ["received", "run_interruptible"]
