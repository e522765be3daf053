"""One keep-alive HTTP/1.1 connection of the blob data plane (the pool is wire.py)."""

from __future__ import annotations

import select

import h11
import trio

from ocync.registry.origin import Origin

# h11 refuses response heads bigger than this (its default is 16 KiB; S3-style storage hosts
# send long signed headers).
MAX_HEAD = 64 * 1024


class WireConnection:
    """One HTTP/1.1 connection of the data plane: its stream and h11 state machine."""

    __slots__ = ("h11", "origin", "reused", "stream")

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.reused = False

    def renew(self) -> bool:
        """After a body relayed past h11 (exactly Content-Length bytes, nothing more): a fresh
        h11 state machine for the next request, if both sides may keep the connection (h11
        moved our side to MUST_CLOSE for ``Connection: close`` or an HTTP/1.0 answer)."""
        if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.SEND_BODY:
            return False
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        return True

    def socket_readable(self) -> bool:
        """An idle keep-alive connection that is readable was closed (or spoke out of turn)."""
        inner = self.stream
        if isinstance(inner, trio.SSLStream):
            inner = inner.transport_stream
        sock = getattr(inner, "socket", None)
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await trio.aclose_forcefully(self.stream)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass


__all__ = ["MAX_HEAD", "WireConnection"]
