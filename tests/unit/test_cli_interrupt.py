"""The one-shot commands receive SIGINT/SIGTERM in a task: the work is cancelled and
KeyboardInterrupt is raised by the main task once it is (never inside a finaliser, where
Python would swallow it)."""

from __future__ import annotations

import signal

import pytest
import trio

from ocync.cli import interrupt
from ocync.errors import OcyncError


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_cancels_the_work_and_raises_after_the_run(signum: signal.Signals) -> None:
    reached: list[str] = []

    async def hangs() -> int:
        signal.raise_signal(signum)  # delivered to the receiver task
        try:
            await trio.sleep_forever()
        finally:
            reached.append("cancelled")
        return 0

    with pytest.raises(KeyboardInterrupt):
        interrupt.run_interruptible(hangs)
    assert reached == ["cancelled"]
    assert interrupt.received["signal"] == signum.name


def test_a_failure_while_being_cancelled_is_the_interrupt() -> None:
    async def fails_on_cancel() -> None:
        signal.raise_signal(signal.SIGTERM)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise OcyncError("connection closed") from None

    with pytest.raises(KeyboardInterrupt):
        interrupt.run_interruptible(fails_on_cancel)


def test_without_a_signal_the_value_or_the_error_comes_back() -> None:
    async def value(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x * 2

    async def error() -> None:
        raise OcyncError("no such registry")

    assert interrupt.run_interruptible(value, 21) == 42
    with pytest.raises(OcyncError, match="no such registry"):
        interrupt.run_interruptible(error)
    assert signal.getsignal(signal.SIGTERM) is not None
