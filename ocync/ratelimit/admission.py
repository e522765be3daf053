"""The two FIFO queues a request waits in, as trio primitives that only wait and apply: the
gate (a ``GateState`` decides the pause and the token bucket; one task at a time sleeps for its
``delay(now)``) and the slots of one AIMD window (an ``AIMDWindow`` decides the limit; a
releasing task hands its slot to the head waiter). ``limiter.PrincipalController`` owns them.
"""

from __future__ import annotations

from collections import deque

import trio

from ocync.ratelimit.aimd import AIMDWindow
from ocync.ratelimit.gate import GateState


class WindowSlots:
    """One AIMD window plus its in-flight count and FIFO of waiting tasks."""

    __slots__ = ("aimd", "in_flight", "key", "requests", "waiters")

    def __init__(self, key: str, aimd: AIMDWindow) -> None:
        self.key = key
        self.aimd = aimd
        self.in_flight = 0
        self.requests = 0
        self.waiters: deque[trio.Event] = deque()

    @property
    def limited(self) -> bool:
        """Whether the window is the bottleneck (full, or tasks queue for it)."""
        return self.in_flight >= self.aimd.limit or bool(self.waiters)

    async def wait_for_slot(self) -> None:
        """FIFO for a slot; a releasing task hands its slot to the head waiter."""
        if not self.waiters and self.in_flight < self.aimd.limit:
            self.in_flight += 1
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        waiter = trio.Event()
        self.waiters.append(waiter)
        try:
            await waiter.wait()
        except BaseException:
            # Shield-and-reraise: give back a slot handed to us, or leave the queue.
            if waiter.is_set():
                self.release()
            else:
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots (the limit may have grown) to the waiters at the head."""
        while self.waiters and self.in_flight < self.aimd.limit:
            self.in_flight += 1
            self.waiters.popleft().set()


class GateQueue:
    """FIFO through a gate: the head task sleeps until ``gate.delay(now)`` is 0, then takes its
    token (``gate.admit``) and wakes the next."""

    __slots__ = ("gate", "waiters")

    def __init__(self, gate: GateState) -> None:
        self.gate = gate
        self.waiters: deque[trio.Event] = deque()

    @property
    def waiting(self) -> bool:
        return bool(self.waiters)

    async def wait_for_gate(self, now: float) -> None:
        """Pass the pause and the token bucket in FIFO order; takes one token."""
        if not self.waiters and self.gate.delay(now) <= 0:
            # No yield between the gate and the window queue keeps admission FIFO end to end.
            self.gate.admit(now)
            return
        waiter = trio.Event()
        self.waiters.append(waiter)
        try:
            if self.waiters[0] is not waiter:
                await waiter.wait()
            while True:
                now = trio.current_time()
                delay = self.gate.delay(now)
                if delay <= 0:
                    self.gate.admit(now)
                    return
                await trio.sleep(delay)
        finally:
            head = bool(self.waiters) and self.waiters[0] is waiter
            self.waiters.remove(waiter)
            if head and self.waiters:
                self.waiters[0].set()


__all__ = ["GateQueue", "WindowSlots"]
