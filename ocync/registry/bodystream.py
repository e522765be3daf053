"""The bodies a client streams: a blob GET's chunks as received (counted in, and a timeout
counted towards the host's silence) and an upload body's chunks as they go out (counted out).
Iterator objects, not async generators: an aborted transfer leaves nothing to finalize.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, cast

from ocync.errors import NotAnswering, RequestTimeout, TransportError
from ocync.registry.exchange import HostSilence
from ocync.registry.requeststats import RequestLedger
from ocync.registry.transport import Reply


class BlobStream:
    """The body of a blob GET: ``content_length`` and the chunks as received
    (``async for chunk in stream.chunks()``; an iterator object, not a generator)."""

    def __init__(
        self, response: Reply, counters: RequestLedger, kind: str, what: str, *,
        silence: HostSilence | None = None, not_answering: Callable[[], NotAnswering] | None = None,
    ) -> None:
        self._response = response
        self._counters = counters
        self._kind = kind
        self.what = what
        self._silence = silence
        self._not_answering = not_answering
        length = response.headers.get("content-length", "")
        self.content_length = int(length) if length.isdigit() else None
        self._read: Callable[[], Awaitable[bytes]] = response.read_some

    def chunks(self, *, views: bool = False) -> AsyncIterator[bytes]:
        """With ``views`` each chunk is a memoryview of one reusable buffer (the wire's relay),
        valid until the next one is asked for: for a consumer that is done with each in turn."""
        read_view = getattr(self._response, "read_view", None) if views else None
        if read_view is not None:
            self._read = cast(Any, read_view)  # memoryviews: bytes-like, like read_some's chunks
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._read()
        except TransportError as exc:
            self._counters.transport_errors += 1
            silence = self._silence
            if silence is not None and isinstance(exc, RequestTimeout) and silence.timed_out() and self._not_answering:
                raise self._not_answering() from exc
            raise
        if self._silence is not None:
            self._silence.answered()
        if not chunk:
            raise StopAsyncIteration
        self._counters.add_bytes(self._kind, len(chunk))
        return chunk


class CountedChunks:
    """Counts the bytes of an upload body as they go out."""

    def __init__(self, content: AsyncIterable[bytes], counters: RequestLedger, kind: str) -> None:
        self._inner = aiter(content)
        self._counters = counters
        self._kind = kind

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._inner)
        self._counters.add_bytes(self._kind, 0, len(chunk))
        return chunk


__all__ = ["BlobStream", "CountedChunks"]
