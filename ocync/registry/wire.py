"""The blob data plane: HTTP/1.1 with h11 driven directly on trio streams.

Blob bodies are the bytes that matter (measured: a copy through httpx on both sides costs
~155 MB/s per core, h11 on trio streams about half the CPU). h11 parses the heads; a body of
known Content-Length is relayed through one reusable buffer (``bodyrelay``: ``recv_into``,
memoryview slices) and request bodies go out as given (h11 only counts them). No async
generators: an aborted transfer leaves nothing for the garbage collector to finish.
Control-plane requests (tokens, manifests, HEADs, POSTs) stay on httpx.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from types import TracebackType
from urllib.parse import urlsplit

import h11
import httpx
import trio

from ocync.errors import TransportError
from ocync.registry.bodyrelay import FileSpan, ReceiveRelay, relayed_length, send_file
from ocync.registry.neterrors import redact_url, transport_error
from ocync.registry.origin import Origin
from ocync.registry.wireconnection import WireConnection


@dataclass(frozen=True, slots=True)
class WirePoolStatistics:
    """Connections of the data plane: opened, reused for a later request, idle now."""

    connections_opened: int = 0
    connections_reused: int = 0
    idle: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


# One receive of up to 256 KiB: fewer trips through h11 and the event loop per byte.
RECEIVE_SIZE = 256 * 1024
MAX_IDLE_PER_ORIGIN = 16
# Socket send buffer for body connections (Linux doubles it; autotuning tops out at 4 MiB by
# default): each writable wakeup moves more of an upload. Measured on loopback to the mock:
# ~0.15 CPU-s/GB less than with autotuning (stress/client_bench.py).
SEND_BUFFER = 4 * 1024 * 1024
class WireResponse:
    """A response whose body is read with :meth:`read_some`; close it with :meth:`aclose`."""

    def __init__(
        self, pool: WirePool, conn: WireConnection, status: int, headers: httpx.Headers, url: str, method: str = "GET"
    ) -> None:
        self._pool = pool
        self._conn: WireConnection | None = conn
        self.status = status
        self.headers = headers
        self.url = url
        self.method = method
        self._pending: list[bytes] = []
        self._done = False
        self._relay: ReceiveRelay | None = None
        self._h11_body = False  # read_some started the body through h11: no relay then

    async def read_view(self) -> memoryview:
        """The next piece of the body as a view of one reusable buffer, valid until the next
        call; empty at the end. A body of known length is received straight from the socket
        (h11 has parsed the head only); others are h11's pieces. Raises as :meth:`read_some`."""
        relay = self._relay
        if relay is None:
            relay = self._start_relay()
            if relay is None:
                return memoryview(await self.read_some())
        if self._conn is None:
            return memoryview(b"")
        try:
            with trio.fail_after(self._pool.read_timeout):
                view = await relay.receive()
        except (OSError, h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError) as exc:
            await self._fail()
            raise transport_error(
                self.method, self.url, exc, timeouts=self._pool.timeouts, during="(body truncated)"
            ) from exc
        if relay.done:
            self._done = True
            conn, self._conn = self._conn, None
            if conn is not None:
                await self._pool._release_relayed(conn, clean=not relay.overflow)
        return view

    def _start_relay(self) -> ReceiveRelay | None:
        conn = self._conn
        if self._h11_body or self._done or conn is None or conn.h11.their_state is not h11.SEND_BODY:
            return None
        length = relayed_length(self.method, self.status, self.headers.multi_items())
        if length is None:
            return None
        first, _ = conn.h11.trailing_data  # body bytes that came with the head
        self._relay = ReceiveRelay(conn.stream, length, first)
        return self._relay

    async def read_some(self) -> bytes:
        """The next piece of the body as received; ``b""`` at the end. Raises TransportError
        on a connection error or a body shorter than its Content-Length."""
        if self._pending:
            return self._pending.pop()
        conn = self._conn
        if self._done or conn is None:
            return b""
        if self._relay is not None:
            return bytes(await self.read_view())
        self._h11_body = True
        timeout = self._pool.read_timeout
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._fail()
                raise transport_error(self.method, self.url, exc, during="(body truncated)") from exc
            if event is h11.NEED_DATA:
                try:
                    with trio.fail_after(timeout):
                        data = await conn.stream.receive_some(RECEIVE_SIZE)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
                    await self._fail()
                    raise transport_error(
                        self.method, self.url, exc, timeouts=self._pool.timeouts, during="(body truncated)"
                    ) from exc
                conn.h11.receive_data(data)  # type: ignore[arg-type]  # bytes-like is fine
                continue
            if isinstance(event, h11.Data):
                return event.data  # a bytearray slice of h11's buffer: no further copy
            if isinstance(event, h11.EndOfMessage):
                self._done = True
                await self._release()
                return b""
            if isinstance(event, h11.ConnectionClosed):
                await self._fail()
                raise TransportError(f"{redact_url(self.url)}: connection closed mid-body")

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool._release(conn)

    async def _fail(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()

    async def aclose(self) -> None:
        """Done with the body: a finished one keeps the connection, an unfinished one closes it."""
        if self._done:
            await self._release()
        else:
            await self._fail()

    async def __aenter__(self) -> WireResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class WirePool:
    """Keep-alive connections per origin, h11 on trio streams; one request per connection at
    a time. Stale idle connections are detected before reuse (readable while idle)."""

    def __init__(self, *, verify: bool = True, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 user_agent: str = "ocync") -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.user_agent = user_agent
        self._ssl: ssl.SSLContext | None = None
        self._verify = verify
        self._idle: dict[Origin, list[WireConnection]] = {}
        self.connections_opened = 0
        self.connections_reused = 0

    @property
    def timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            if not self._verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def _connect(self, origin: Origin, method: str = "GET", url: str = "") -> WireConnection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.socket_readable():
                await conn.aclose()
                continue
            conn.reused = True
            self.connections_reused += 1
            return conn
        tcp: trio.SocketStream | None = None
        try:
            with trio.fail_after(self.connect_timeout):
                tcp = await trio.open_tcp_stream(origin.host, origin.port)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                stream: trio.abc.Stream = tcp
                if origin.scheme == "https":
                    tls = trio.SSLStream(tcp, self._ssl_context(), server_hostname=origin.host, https_compatible=True)
                    await tls.do_handshake()
                    stream = tls
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            if tcp is not None:
                await _close_quietly(tcp)
            where = url or f"{origin.scheme}://{origin.host_header}/"
            raise transport_error(method, where, exc, timeouts=self.timeouts) from exc
        except BaseException:
            if tcp is not None:
                await _close_quietly(tcp)
            raise
        self.connections_opened += 1
        return WireConnection(stream, origin)

    async def _release(self, conn: WireConnection) -> None:
        h = conn.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            try:
                h.start_next_cycle()
            except h11.LocalProtocolError:
                await conn.aclose()
                return
            await self._keep(conn)
            return
        await conn.aclose()

    async def _release_relayed(self, conn: WireConnection, *, clean: bool) -> None:
        """After a relayed body: kept for reuse when exactly the body came and both sides may."""
        if clean and conn.renew():
            await self._keep(conn)
        else:
            await conn.aclose()

    async def _keep(self, conn: WireConnection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) < MAX_IDLE_PER_ORIGIN:
            idle.append(conn)
        else:
            await conn.aclose()

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] | AsyncIterator[bytes | memoryview | FileSpan] | None = None,
    ) -> WireResponse:
        """Send one request (a streamed body is written chunk by chunk as it comes) and
        return once the response head arrived."""
        origin = Origin.of(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = await self._connect(origin, method, url)
        head = [("Host", origin.host_header), ("User-Agent", self.user_agent)]
        head += [(k, v) for k, v in headers.items() if k.lower() not in ("host", "user-agent")]
        lowered = {k.lower() for k, _ in head}
        if isinstance(body, bytes) and "content-length" not in lowered:
            head.append(("Content-Length", str(len(body))))
        elif body is not None and "content-length" not in lowered:
            head.append(("Transfer-Encoding", "chunked"))
        try:
            await self._send(conn.stream, conn.h11.send(h11.Request(method=method, target=target, headers=head)))
            await self._send_body(conn, body)
            await self._send(conn.stream, conn.h11.send(h11.EndOfMessage()) or b"")
            return await self._receive_head(conn, url, method)
        except BaseException as exc:
            await conn.aclose()
            if isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError,
                                trio.TooSlowError)):
                raise transport_error(method, url, exc, timeouts=self.timeouts) from exc
            raise

    async def _send_body(
        self, conn: WireConnection, body: bytes | AsyncIterator[bytes] | AsyncIterator[bytes | memoryview | FileSpan] | None
    ) -> None:
        if isinstance(body, bytes):
            if body:
                for piece in conn.h11.send_with_data_passthrough(h11.Data(data=body)) or ():
                    await self._send(conn.stream, piece)
        elif body is not None:
            # h11 counts each chunk against Content-Length and hands back the very object
            # (a memoryview of a relay buffer, a FileSpan): sent as is, never copied
            async for chunk in body:
                data_event = h11.Data(data=chunk)  # type: ignore[arg-type]  # any sized object passes through
                for piece in conn.h11.send_with_data_passthrough(data_event) or ():
                    if isinstance(piece, FileSpan):
                        await send_file(conn.stream, piece, self.read_timeout)
                    else:
                        await self._send(conn.stream, piece)

    async def _receive_head(self, conn: WireConnection, url: str, method: str) -> WireResponse:
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                with trio.fail_after(self.read_timeout):
                    data = await conn.stream.receive_some(RECEIVE_SIZE)
                conn.h11.receive_data(data)  # type: ignore[arg-type]  # EOF: h11 reports it
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                response_headers = httpx.Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers])
                return WireResponse(self, conn, event.status_code, response_headers, url, method)
            if isinstance(event, h11.ConnectionClosed):
                raise TransportError(f"{redact_url(url)}: the server closed the connection without answering ({method})")

    async def _send(self, stream: trio.abc.Stream, data: bytes | bytearray | memoryview | None) -> None:
        """Write one piece (at most a chunk of the body); a peer that does not take it within
        ``read_timeout`` seconds (a frozen server, its receive buffer full) fails the request
        as a silent read does."""
        if data:
            with trio.fail_after(self.read_timeout):
                await stream.send_all(data)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await conn.aclose()

    def statistics(self) -> WirePoolStatistics:
        return WirePoolStatistics(
            connections_opened=self.connections_opened,
            connections_reused=self.connections_reused,
            idle=sum(len(v) for v in self._idle.values()),
        )

    def __repr__(self) -> str:
        return f"<WirePool opened={self.connections_opened} reused={self.connections_reused}>"


async def _close_quietly(stream: trio.abc.AsyncResource) -> None:
    with trio.CancelScope(shield=True):
        try:
            await trio.aclose_forcefully(stream)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


__all__ = ["RECEIVE_SIZE", "Origin", "WirePool", "WirePoolStatistics", "WireResponse"]
