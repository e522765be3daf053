"""The execution stage of a sync run: the dispatcher and the items it runs.

The dispatcher buffers what discovery has sent and starts the item with the highest leader
score (shared blobs it covers, counted over everything discovered so far) so that followers
can mount; at most ``max_concurrent_transfers`` items are in flight, each copied to all its
targets at once (transfer.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import trio

from ocync.engine.discovery import WorkItem
from ocync.engine.nursery import run_all
from ocync.engine.referrers import find_referrers
from ocync.engine.report import ImageResult
from ocync.engine.runstate import RunState
from ocync.engine.stagestate import EngineOptions, RunCounters
from ocync.engine.transfer import (
    TransferProgress,
    failed_result,
    interrupted_result,
    transfer_image,
)
from ocync.errors import OcyncError


class ExecutionStage:
    """Runs the work items discovery sends; ``scope`` is cut by the drain deadline."""

    def __init__(
        self,
        ctx: RunState,
        options: EngineOptions,
        counters: RunCounters,
        record: Callable[[ImageResult], None],
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.counters = counters
        self.record = record
        self.scope = trio.CancelScope()

    async def dispatch(self, recv: trio.MemoryReceiveChannel[WorkItem]) -> None:
        slots = trio.Semaphore(self.options.max_concurrent_transfers)
        ready: list[WorkItem] = []
        closed = False
        with self.scope:
            async with recv, trio.open_nursery() as nursery:
                while not self.counters.stopping:
                    if not ready:
                        if closed:
                            break
                        try:
                            ready.append(await recv.receive())
                        except trio.EndOfChannel:
                            break
                    await slots.acquire()
                    closed = self._take_ready(recv, ready, closed)
                    if self.counters.stopping:
                        slots.release()
                        break
                    best = max(
                        ready,
                        key=lambda w: (self.ctx.refcounts.leader_score(w.tree.blob_digests()), -w.seq),
                    )
                    ready.remove(best)
                    nursery.start_soon(self._run_item, best, slots)

    def _take_ready(
        self, recv: trio.MemoryReceiveChannel[WorkItem], ready: list[WorkItem], closed: bool
    ) -> bool:
        """Buffer what is waiting in the channel (up to ``channel_size``) without blocking;
        returns whether the channel is now known to be closed."""
        while len(ready) < self.options.channel_size and not closed:
            try:
                ready.append(recv.receive_nowait())
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                closed = True
        return closed

    async def _run_item(self, item: WorkItem, slots: trio.Semaphore) -> None:
        self.counters.in_flight += 1
        try:
            try:
                referrers = await find_referrers(item, self.ctx.sources[item.mapping.source])
            except OcyncError as exc:
                # e.g. require_artifacts without any: the image fails before anything is written
                for dest in item.targets:
                    self.counters.finished += 1
                    self.record(failed_result(item, dest, exc))
                return

            async def to(dest_index: int) -> None:
                dest = item.targets[dest_index]
                progress = TransferProgress()
                start = trio.current_time()
                result: ImageResult | None = None
                try:
                    result = await transfer_image(self.ctx, item, dest, referrers, progress)
                finally:
                    if result is None:  # cut off by the drain deadline: report how far it got
                        seconds = trio.current_time() - start
                        self.record(interrupted_result(item, dest, progress, seconds))
                self.counters.finished += 1
                self.record(result)

            await run_all(functools.partial(to, i) for i in range(len(item.targets)))
        finally:
            self.counters.in_flight -= 1
            slots.release()


__all__ = ["ExecutionStage"]
