"""The h11 <-> trio adapter for one connection: read requests, call the handler, write responses.

h11 parses and frames; this module only moves bytes, with keep-alive, large receive sizes and
zero-copy body slices. Every connection is guarded: malformed HTTP gets 400 (or 431) and a close,
a stalled peer times out, an early answer is a lingering close, and no exception escapes.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import h11
import trio

from .app import Registry
from .http import API_VERSION, Request, Response, error

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
# Lingering close after an early answer, as nginx does (lingering_close; these are its
# lingering_time and lingering_timeout defaults; Go's net/http, distribution's server, half-closes
# and waits 500 ms in closeWriteAndWait): at most this long, this long per silent read, and this
# many bytes discarded.
LINGER_SECONDS = 30.0
LINGER_READ_TIMEOUT = 5.0
LINGER_BYTES = DRAIN_LIMIT

Handler = Callable[[Request], Awaitable[Response]]
REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Closed(Exception):
    """The peer went away or timed out; close quietly."""


class Connection:
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
            await self._linger()
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    async def _linger(self) -> None:
        """Close after an answer sent before the request was read to its end, as production
        servers do: half-close (the peer reads our answer and then EOF), discard what the peer
        still sends for a bounded time and size, then let the caller close. Closing at once with
        unread bytes in the kernel's buffer sends an RST, and the peer, still writing its body,
        may lose the answer in flight and see a reset instead."""
        await self.stream.send_eof()
        discarded = 0
        with trio.move_on_after(LINGER_SECONDS):
            while discarded < LINGER_BYTES:
                with trio.move_on_after(LINGER_READ_TIMEOUT) as silent:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                if silent.cancelled_caught or not data:
                    return
                discarded += len(data)

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
            self.registry.record_cut_short(resp, planned - bytes_out)
        if not complete:
            return False
        if resp.close or self.conn.our_state is h11.MUST_CLOSE:
            if not body.finished:
                await self._linger()
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

    def __init__(self, connection: Connection, headers: dict[str, str]) -> None:
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
