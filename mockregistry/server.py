"""The h11 <-> trio adapter: listeners for the registry and its storage host, and `serve_mock`.

h11 parses and frames; this module only moves bytes, with keep-alive, large receive sizes and
zero-copy body slices. Every connection is guarded: malformed HTTP gets 400 (or 431) and a close,
a stalled peer times out, and no exception ever escapes a connection task.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import IO, Any, cast

import h11
import trio

from .app import API_VERSION, Registry, Request, Response, error
from .auth import Authenticator
from .quirks import FaultInjector, FaultRates, MockOptions
from .store import Store

log = logging.getLogger("mockregistry")

# Large reads keep per-chunk overhead low (h11 copies each chunk once into its buffer).
RECEIVE_SIZE = 256 * 1024
SEND_CHUNK = 1024 * 1024
# h11's default header limit is 16 KiB (it cites node, Tomcat and Apache); 64 KiB leaves room for
# long bearer tokens while still bounding memory per connection.
MAX_HEADER_BYTES = 64 * 1024
# A peer silent this long (idle keep-alive or mid-request) is dropped.
READ_TIMEOUT = 120.0
# Unread request bodies up to this size are drained to keep the connection; beyond it we close.
DRAIN_LIMIT = 64 * 1024 * 1024

Handler = Callable[[Request], Awaitable[Response]]
REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Closed(Exception):
    """The peer went away or timed out; close quietly."""


class _Connection:
    """One HTTP/1.1 connection: read requests, call the handler, write responses."""

    def __init__(self, stream: trio.SocketStream, handler: Handler, registry: Registry) -> None:
        self.stream = stream
        self.handler = handler
        self.registry = registry
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._idle = trio.CancelScope()
        try:
            peer = stream.socket.getpeername()
            self.client = str(peer[0])
        except OSError:
            self.client = "unknown"

    async def next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            # One scope per connection whose deadline only runs while we wait for the peer
            # (cheaper than a new cancel scope per read).
            self._idle.deadline = trio.current_time() + READ_TIMEOUT
            data = await self.stream.receive_some(RECEIVE_SIZE)
            self._idle.deadline = math.inf
            self.conn.receive_data(data)

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            await self.stream.send_all(data)

    async def serve(self) -> None:
        with self._idle:
            await self._serve()

    async def _serve(self) -> None:
        try:
            while True:
                event = await self.next_event()
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed or a stray event
                if not await self._exchange(event):
                    return
                self.conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            # Malformed HTTP (in the head or mid-body): 400/431 when we still can, then close.
            await self._reject(exc.error_status_hint, str(exc))
        except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except h11.ProtocolError as exc:
            log.debug("protocol error from %s: %s", self.client, exc)
        except Exception:  # never let one connection take the server down
            log.exception("unexpected error serving %s", self.client)
        finally:
            await trio.aclose_forcefully(self.stream)

    async def _reject(self, status: int, detail: str) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        resp = error(status if 400 <= status < 500 else 400, "UNSUPPORTED", message="malformed request",
                     close=True)
        try:
            await self._send_head_and_body(resp, head_only=False)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def _exchange(self, event: h11.Request) -> bool:
        """Serve one request; False when the connection must close."""
        if sum(len(k) + len(v) + 4 for k, v in event.headers) + len(event.target) > MAX_HEADER_BYTES:
            # h11 only bounds a header block still incomplete; one read may bring a whole big one.
            await self._reject(431, "request headers too large")
            return False
        headers: dict[str, str] = {}
        for raw_name, raw_value in event.headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        method = event.method.decode("latin-1").upper()
        body = _BodyReader(self, headers)
        try:
            req = Request(method, event.target.decode("latin-1"), headers, self.client, body)
        except ValueError:
            await self._reject(400, "bad target")
            return False
        started = trio.current_time()
        try:
            resp = await self.handler(req)
        except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            raise
        except Exception:
            log.exception("handler failed for %s %s", method, req.path)
            resp = error(500, "UNKNOWN", message="internal error in the mock", close=True)
        if resp.abort:
            self.registry.record(req, resp, 0, trio.current_time() - started)
            _reset(self.stream)
            return False
        if not body.finished and not resp.close:
            expected = body.content_length
            if expected is None or expected - body.bytes_read > DRAIN_LIMIT:
                resp.close = True
        # Count the exchange before its bytes leave: a client that has read its last response
        # then sees it in /_mock/stats. A body cut short is corrected afterwards.
        planned = 0 if method == "HEAD" else resp.content_length
        self.registry.record(req, resp, planned, trio.current_time() - started)
        bytes_out = 0
        try:
            bytes_out, complete = await self._send_response(req, resp)
        finally:
            if resp.source is not None:
                resp.source.close()
            if bytes_out < planned and resp.counted:
                self.registry.stats.bytes_out -= planned - bytes_out
        if not complete:
            return False
        if resp.close or self.conn.our_state is h11.MUST_CLOSE:
            return False
        await body.drain()
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    async def _send_head_and_body(self, resp: Response, head_only: bool) -> None:
        headers = [API_VERSION, *resp.headers]
        if resp.status != 204 and resp.status >= 200:
            headers.append(("Content-Length", str(resp.content_length)))
        if resp.close:
            headers.append(("Connection", "close"))
        h11_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        reason = REASONS.get(resp.status, b"")
        out = bytearray(self.conn.send(h11.Response(status_code=resp.status, headers=h11_headers,
                                                    reason=reason)))
        if resp.body and not head_only:
            for piece in self.conn.send_with_data_passthrough(h11.Data(data=resp.body)) or ():
                out += piece
        if resp.source is None or head_only:
            out += self.conn.send(h11.EndOfMessage())
        await self.send(out)

    async def _send_response(self, req: Request, resp: Response) -> tuple[int, bool]:
        """Send status, headers and body; (body bytes sent, whether the response completed)."""
        head_only = req.method == "HEAD"
        if head_only and resp.source is not None:
            resp.source.close()
            resp.source = None
        await self._send_head_and_body(resp, head_only)
        if resp.source is None or head_only:
            return (0 if head_only else len(resp.body)), True
        source, fault = resp.source, resp.fault
        total = resp.length
        cut = total
        if fault is not None and fault.kind in ("reset", "truncate"):
            cut = fault.offset
        sent = 0
        while sent < cut:
            size = min(SEND_CHUNK, cut - sent)
            chunk = source.read(resp.offset + sent, size)
            size = len(chunk)  # a source may return less (memory blocks never cross a boundary)
            if not size:
                raise _Closed  # content vanished under us (deleted from disk)
            if fault is not None and fault.kind == "corrupt" and sent <= fault.offset < sent + size:
                damaged = bytearray(chunk)  # a copy: stored content is never touched
                damaged[fault.offset - sent] ^= 0xFF
                chunk = bytes(damaged)
            # h11 passes the slice through untouched (Content-Length framing): no copy.
            pieces = self.conn.send_with_data_passthrough(h11.Data(data=cast(bytes, chunk)))
            for piece in pieces or ():
                await self.stream.send_all(piece)
            sent += size
        if cut < total:
            assert fault is not None
            if fault.kind == "reset":
                _reset(self.stream)
            return sent, False
        await self.send(self.conn.send(h11.EndOfMessage()))
        return sent, True


def _reset(stream: trio.SocketStream) -> None:
    """Make the coming close an RST (SO_LINGER 0): a connection dropped mid-body."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class _BodyReader:
    """The request body as chunks straight from h11's Data events."""

    def __init__(self, connection: _Connection, headers: dict[str, str]) -> None:
        self._connection = connection
        length = headers.get("content-length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        if "transfer-encoding" not in headers and self.content_length is None:
            self.content_length = 0
        self.bytes_read = 0
        self.finished = False

    def chunks(self) -> AsyncIterator[bytes | bytearray]:
        # A plain async iterator (not an async generator): handlers may stop reading early
        # without leaving a generator to be finalised by the garbage collector.
        return self

    def __aiter__(self) -> _BodyReader:
        return self

    async def __anext__(self) -> bytes | bytearray:
        connection = self._connection
        conn = connection.conn
        if self.finished:
            raise StopAsyncIteration
        if conn.they_are_waiting_for_100_continue:
            await connection.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        event = await connection.next_event()
        if isinstance(event, h11.Data):
            self.bytes_read += len(event.data)
            return event.data
        if isinstance(event, h11.EndOfMessage):
            self.finished = True
            raise StopAsyncIteration
        raise _Closed

    async def drain(self) -> None:
        if self.finished:
            return
        conn = self._connection.conn
        if conn.they_are_waiting_for_100_continue:
            # They never sent the body; h11 then expects the connection to close.
            raise _Closed
        async for _ in self.chunks():
            pass


# -- the in-process API ----------------------------------------------------------------------------
@dataclass(slots=True)
class MockRegistry:
    """A running mock: its URLs, its store, and its counters."""

    url: str
    host: str
    storage_url: str | None
    registry: Registry
    options: MockOptions
    listeners: list[trio.SocketListener] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.registry.store

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /_mock/stats``."""
        return self.registry.statistics()

    def reset_stats(self) -> None:
        self.registry.reset_stats()

    def statistics(self) -> dict[str, Any]:
        return self.stats()

    def __repr__(self) -> str:
        return f"MockRegistry({self.url}, profile={self.registry.profile.name}, storage={self.storage_url})"


def build_registry(options: MockOptions, access_log: IO[str] | None = None,
                   clock: Callable[[], float] | None = None) -> Registry:
    """The registry logic for ``options`` (no sockets yet); ``clock`` drives rate windows."""
    profile = options.resolve_profile()
    rates = FaultRates(
        fault_rate=options.fault_rate,
        reset_rate=options.reset_rate,
        truncate_rate=options.truncate_rate,
        corrupt_rate=options.corrupt_rate,
        corrupt_first=options.corrupt_first,
        latency=options.latency_ms / 1000.0,
        latency_jitter=options.latency_jitter_ms / 1000.0,
    )
    auth = Authenticator(
        enabled=options.auth == "token",
        users=options.users,
        user_namespaces=options.user_namespaces,
        public=options.public,
    )
    return Registry(
        profile=profile,
        store=Store(options.storage_dir),
        auth=auth,
        faults=FaultInjector(rates, options.seed),
        access_log=access_log,
        clock=clock or trio.current_time,
    )


def _connection_handler(handler: Handler, registry: Registry) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def serve(stream: trio.SocketStream) -> None:
        await _Connection(stream, handler, registry).serve()

    return serve


async def _open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    return await trio.open_tcp_listeners(port, host=host, backlog=1024)


def _url_of(listener: trio.SocketListener) -> tuple[str, str]:
    host, port = listener.socket.getsockname()[:2]
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{hostport}", hostport


@asynccontextmanager
async def _unwrap_single() -> AsyncIterator[None]:
    """Let an ordinary exception raised by the `async with serve_mock()` body reach the caller as
    itself, not wrapped in the nursery's ExceptionGroup (cancellations are left alone)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise


def _open_access_log(options: MockOptions) -> IO[str] | None:
    if options.access_log is None:
        return None
    return open(options.access_log, "a", encoding="utf-8")


@asynccontextmanager
async def serve_mock(options: MockOptions | None = None, *,
                     clock: Callable[[], float] | None = None) -> AsyncIterator[MockRegistry]:
    """Run a mock registry (and its storage host, when blob redirects are on) in a nursery.

    ``clock`` (default ``trio.current_time``) is what rate-limit windows and the stats timeline
    read; tests pass a hand-driven one to check exact window counts without sleeping.
    """
    options = options or MockOptions()
    access_log = _open_access_log(options)
    try:
        registry = build_registry(options, access_log, clock)
        async with _unwrap_single(), trio.open_nursery() as nursery:
            listeners = await _open_listeners(options.host, options.port)
            url, hostport = _url_of(listeners[0])
            registry.base_url = url
            storage_url = None
            all_listeners = list(listeners)
            if registry.profile.blob_redirect:
                storage_listeners = await _open_storage_listeners(options)
                storage_url, _ = _url_of(storage_listeners[0])
                registry.storage_url = storage_url
                all_listeners += storage_listeners
                nursery.start_soon(trio.serve_listeners,
                                   _connection_handler(registry.handle_storage, registry), storage_listeners)
            nursery.start_soon(trio.serve_listeners,
                               _connection_handler(registry.handle, registry), listeners)
            mock = MockRegistry(url, hostport, storage_url, registry, options, all_listeners)
            try:
                yield mock
            finally:
                nursery.cancel_scope.cancel()
    finally:
        if access_log is not None:
            access_log.close()


async def _open_storage_listeners(options: MockOptions) -> list[trio.SocketListener]:
    """The storage host lives on another loopback address when it can, so that clients comparing
    host names (Go's net/http ignores ports) see a different host, as with GHCR's CDN."""
    if options.host == "127.0.0.1":
        try:
            return await _open_listeners("127.0.0.2", options.storage_port)
        except OSError:
            pass
    return await _open_listeners(options.host, options.storage_port)
