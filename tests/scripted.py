"""A scripted registry behind ocync's :class:`~ocync.registry.transport.Transport` interface:
an httpx-style handler (``httpx.Request -> httpx.Response``) answers every request, with no
socket. Injected there, it carries both planes, so the client picks the plane, streams
upload bodies chunk by chunk and reads bodies piece by piece as it does in production."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import trio

from ocync.registry.client import USER_AGENT
from ocync.registry.neterrors import map_transport_errors
from ocync.registry.transport import Body, Reply

Handler = Callable[[httpx.Request], httpx.Response]


class ScriptedReply:
    """A handler's response, its body handed out in ``piece``-sized reads (as the wire does)."""

    def __init__(self, response: httpx.Response, url: str, piece: int,
                 timeouts: tuple[float, float] | None = None) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.url = url
        self._response = response
        self._piece = piece
        self._body: bytes | None = None
        self._offset = 0
        self._timeouts = timeouts

    async def read_some(self) -> bytes:
        await trio.lowlevel.checkpoint()
        if self._body is None:
            with map_transport_errors("GET", self.url, timeouts=self._timeouts, during="(body truncated)"):
                self._body = await self._response.aread()
        chunk = self._body[self._offset : self._offset + self._piece]
        self._offset += len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class ScriptedTransport:
    """Every request goes to ``handler``; an exception it raises (httpx.ConnectError,
    httpx.ReadTimeout...) is mapped as the real transports map theirs."""

    def __init__(self, handler: Handler, *, piece: int = 64 * 1024,
                 timeouts: tuple[float, float] | None = None) -> None:
        """``timeouts`` (connect, read) as the client's settings say, for the messages."""
        self.handler = handler
        self.timeouts = timeouts
        self.piece = piece
        self.requests = 0

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: Body) -> Reply:
        content = b""
        if isinstance(body, bytes):
            content = body
        elif body is not None:
            content = b"".join([chunk async for chunk in body])  # sent chunk by chunk, as the wire does
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        self.requests += 1
        with map_transport_errors(method, url, timeouts=self.timeouts):
            request = httpx.Request(method, url, headers=sent, content=content)
            response = self.handler(request)
        return ScriptedReply(response, url, self.piece, self.timeouts)

    async def aclose(self) -> None:
        return None


__all__ = ["ScriptedReply", "ScriptedTransport"]
