"""One interface for sending a request: :class:`Transport` returns a :class:`Reply` whose head
arrived. Two stacks sit behind it, chosen in one place (:meth:`Transports.choose`): httpx for
the control plane (tokens, manifests, HEADs, POSTs) and the h11 wire (``wire.WirePool``) for
bodies, as httpcore's write loop re-slices a bytes body per send (quadratic for big ones).
Foreign exceptions become typed :class:`~ocync.errors.TransportError` here, at the boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import httpx
import trio

from ocync.registry.neterrors import map_transport_errors
from ocync.registry.wire import WirePool

# A bytes body bigger than this goes over the wire, not httpx (httpcore's re-slicing).
WIRE_BYTES_THRESHOLD = 256 * 1024

Body = bytes | AsyncIterator[bytes] | None


class Reply(Protocol):
    """A response whose head arrived: httpx's (control plane) or the wire's (blob bodies)."""

    status: int
    headers: httpx.Headers
    url: str

    async def read_some(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    """Sends one request and returns once the answer's head arrived; raises only
    :class:`~ocync.errors.TransportError` for network failures."""

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: Body) -> Reply: ...

    async def aclose(self) -> None: ...


class HttpxReply:
    """httpx.Response behind the :class:`Reply` interface."""

    def __init__(self, response: httpx.Response, timeouts: tuple[float, float] | None = None) -> None:
        self._response = response
        self._timeouts = timeouts
        self.status = response.status_code
        self.headers = response.headers
        self.url = str(response.url)
        self._iter: AsyncIterator[bytes] | None = None

    async def read_some(self) -> bytes:
        if self._iter is None:
            self._iter = self._response.aiter_bytes()
        with map_transport_errors("GET", self.url, timeouts=self._timeouts, during="(body truncated)"):
            try:
                return await anext(self._iter)
            except StopAsyncIteration:
                return b""

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._response.aclose()


class HttpxTransport:
    """The control plane: one ``httpx.AsyncClient`` (its pool, TLS and timeouts)."""

    def __init__(self, client: httpx.AsyncClient, timeouts: tuple[float, float] | None = None) -> None:
        self._client = client
        self._timeouts = timeouts

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: Body) -> Reply:
        with map_transport_errors(method, url, timeouts=self._timeouts):
            request = self._client.build_request(method, url, headers=headers, content=body)
            return HttpxReply(await self._client.send(request, stream=True), self._timeouts)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._client.aclose()


class WireTransport:
    """The data plane: h11 on trio streams (:class:`~ocync.registry.wire.WirePool`)."""

    def __init__(self, pool: WirePool) -> None:
        self.pool = pool

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: Body) -> Reply:
        with map_transport_errors(method, url, timeouts=self.pool.timeouts):
            return await self.pool.request(method, url, headers, body)

    async def aclose(self) -> None:
        await self.pool.aclose()


class Transports:
    """The control and data planes of one client (the same transport when one is injected)."""

    def __init__(self, control: Transport, data: Transport | None = None) -> None:
        self.control = control
        self.data = data or control

    @classmethod
    def open(
        cls, *, user_agent: str, verify: bool, connect_timeout: float, read_timeout: float,
        injected: Transport | httpx.AsyncBaseTransport | None = None,
    ) -> Transports:
        """httpx + the wire; an injected :class:`Transport` carries both planes, an injected
        httpx transport (``httpx.MockTransport``) sits under the control plane and carries both."""
        if injected is not None and not isinstance(injected, httpx.AsyncBaseTransport):
            return cls(injected)
        timeouts = (connect_timeout, read_timeout)
        client = httpx.AsyncClient(
            transport=injected,
            # identity: manifest bytes must arrive exactly as stored (their digest).
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30),
            follow_redirects=False,
            verify=verify,
            trust_env=False,
        )
        control = HttpxTransport(client, timeouts)
        if injected is not None:
            return cls(control)
        pool = WirePool(verify=verify, connect_timeout=connect_timeout, read_timeout=read_timeout,
                        user_agent=user_agent)
        return cls(control, WireTransport(pool))

    def choose(self, body: Body, *, stream: bool) -> Transport:
        """Blob bodies (streamed either way) go over the data plane, and so do big byte bodies."""
        big = isinstance(body, bytes) and len(body) > WIRE_BYTES_THRESHOLD
        streamed_body = body is not None and not isinstance(body, bytes)
        return self.data if stream or streamed_body or big else self.control

    async def aclose(self) -> None:
        await self.control.aclose()
        if self.data is not self.control:
            await self.data.aclose()


__all__ = ["WIRE_BYTES_THRESHOLD", "HttpxReply", "HttpxTransport", "Reply", "Transport", "Transports", "WireTransport"]
