"""The blob data plane (h11 on trio streams) against scripted loopback servers: keep-alive
reuse, stale idle connections, truncated and chunked bodies, streamed request bodies."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from ocync.errors import IntegrityError, TransportError
from ocync.registry.wire import Origin, WirePool

Script = Callable[[trio.SocketStream, int], Awaitable[None]]


async def read_request(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


@asynccontextmanager
async def server(script: Script) -> AsyncIterator[str]:
    counter = {"n": 0}

    async def handler(stream: trio.SocketStream) -> None:
        counter["n"] += 1
        try:
            await script(stream, counter["n"])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def body_of(response) -> bytes:  # type: ignore[no-untyped-def]
    parts = []
    while chunk := await response.read_some():
        parts.append(bytes(chunk))
    return b"".join(parts)


async def test_keep_alive_reuse_and_stale_detection() -> None:
    requests: list[bytes] = []
    first_closed = trio.Event()

    async def script(stream: trio.SocketStream, n: int) -> None:
        # connection 1 answers twice then closes while idle; connection 2 answers once
        for _ in range(2 if n == 1 else 1):
            requests.append(await read_request(stream))
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await stream.aclose()
        if n == 1:
            first_closed.set()

    async with server(script) as url:
        pool = WirePool()
        for i in range(3):
            response = await pool.request("GET", url + "/v2/x?q=1", {"Accept": "*/*"})
            assert response.status == 200 and await body_of(response) == b"hello"
            if i == 1:  # the idle connection is closed before the third request goes out
                with trio.fail_after(10):
                    await first_closed.wait()
        stats = pool.statistics()
        await pool.aclose()
    assert stats.connections_opened == 2 and stats.connections_reused == 1
    assert requests[0].startswith(b"GET /v2/x?q=1 HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:" in requests[0].lower()


@pytest.mark.parametrize("read", [pytest.param("h11", id="h11"), pytest.param("relay", id="relay")])
async def test_truncated_body_is_a_transport_error(read: str) -> None:
    async def script(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
        await stream.aclose()

    async with server(script) as url:
        pool = WirePool()
        response = await pool.request("GET", url + "/blob", {})
        with pytest.raises(TransportError, match="truncated|closed") as caught:
            await (body_of(response) if read == "h11" else views_of(response))
        assert "(5 of 10 bytes)" in str(caught.value) and "(GET /blob)" in str(caught.value)
        assert pool.statistics().idle == 0
        await pool.aclose()


async def test_chunked_response_and_streamed_request_body() -> None:
    received: list[bytes] = []

    async def script(stream: trio.SocketStream, n: int) -> None:
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
        received.append(data)
        await stream.send_all(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    class Body:
        def __init__(self) -> None:
            self.items = [b"one", b"two"]

        def __aiter__(self) -> Body:
            return self

        async def __anext__(self) -> bytes:
            if not self.items:
                raise StopAsyncIteration
            return self.items.pop(0)

    async with server(script) as url:
        pool = WirePool()
        response = await pool.request("PUT", url + "/up", {"Content-Type": "application/octet-stream"}, Body())
        assert response.status == 201 and await body_of(response) == b"abcde"
        await pool.aclose()
    assert b"transfer-encoding: chunked" in received[0].lower()
    assert received[0].endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")


async def test_body_error_aborts_the_request() -> None:
    got: list[bytes] = []
    server_saw_close = trio.Event()

    async def script(stream: trio.SocketStream, n: int) -> None:
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        got.append(data)
        server_saw_close.set()

    class Bad:
        def __init__(self) -> None:
            self.sent = False

        def __aiter__(self) -> Bad:
            return self

        async def __anext__(self) -> bytes:
            if self.sent:
                raise IntegrityError("blob x: digest mismatch")
            self.sent = True
            return b"12345"

    async with server(script) as url:
        pool = WirePool()
        with pytest.raises(IntegrityError):
            await pool.request("PUT", url + "/up", {"Content-Length": "10"}, Bad())
        await pool.aclose()
        with trio.fail_after(10):
            await server_saw_close.wait()
    assert got and got[0].endswith(b"12345")  # the server never saw a complete body


async def test_connect_refused() -> None:
    pool = WirePool(connect_timeout=2)
    with pytest.raises(TransportError, match=r"^127\.0\.0\.1:1: connection refused \(GET /x\)$"):
        await pool.request("GET", "http://127.0.0.1:1/x", {})


def test_origin() -> None:
    assert Origin.of("https://Example.com/x").host_header == "example.com"
    assert Origin.of("http://h:8080/x") == Origin("http", "h", 8080)
    assert Origin.of("http://[::1]:5000/").host_header == "[::1]:5000"


async def test_https_with_self_signed_certificate(tmp_path: object) -> None:
    """TLS on the wire: verified by default (a self-signed certificate fails), unverified
    when insecure; the SNI host name is sent."""
    import shutil
    import ssl
    from pathlib import Path

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    base = Path(str(tmp_path))
    await trio.run_process(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem")],
        capture_stdout=True, capture_stderr=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(base / "cert.pem", base / "key.pem")

    async def handler(raw: trio.SocketStream) -> None:
        stream = trio.SSLStream(raw, context, server_side=True, https_compatible=True)
        try:
            await stream.do_handshake()
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nTLS")
            await stream.receive_some(1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        verified = WirePool()
        with pytest.raises(TransportError, match="TLS certificate not trusted"):
            await verified.request("GET", f"https://localhost:{port}/v2/", {})
        insecure = WirePool(verify=False)
        response = await insecure.request("GET", f"https://localhost:{port}/v2/", {})
        assert response.status == 200 and await body_of(response) == b"TLS"
        await insecure.aclose()
        nursery.cancel_scope.cancel()


# -- the zero-copy body relay (ocync/registry/bodyrelay.py) ------------------------------------


async def views_of(response) -> bytes:  # type: ignore[no-untyped-def]
    parts = []
    while view := await response.read_view():
        parts.append(bytes(view))  # a view is valid until the next read: copy it to keep it
    return b"".join(parts)


async def test_relayed_bodies_keep_the_connection_and_count_exactly() -> None:
    """Bodies of known length bypass h11; exactly Content-Length bytes are taken and the
    connection serves the next request (a fresh h11 state machine on the same socket)."""
    big = bytes(range(256)) * (12 * 1024 + 7)  # ~3 MiB: several buffer fills
    bodies = [b"hello", big, b""]

    async def script(stream: trio.SocketStream, n: int) -> None:
        for body in bodies:
            await read_request(stream)
            # head and the first body bytes in one segment: h11 buffers them past the head
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:1000])
            await stream.send_all(body[1000:])

    async with server(script) as url:
        pool = WirePool()
        for body in bodies:
            response = await pool.request("GET", url + "/blob", {})
            assert await views_of(response) == body
            await response.aclose()
            assert pool.statistics().idle == 1
        stats = pool.statistics()
        await pool.aclose()
    assert stats.connections_opened == 1 and stats.connections_reused == 2


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", "bytes past the body", id="overflow"),
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", "close", id="close"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.0", id="http10"),
    ],
)
async def test_relayed_body_not_reused_when_it_must_not_be(answer: bytes, why: str) -> None:
    async def script(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(answer)
        await trio.sleep(1)

    async with server(script) as url:
        pool = WirePool()
        response = await pool.request("GET", url + "/blob", {})
        assert await views_of(response) == b"hello", why
        assert pool.statistics().idle == 0, why
        await pool.aclose()


async def test_relay_slow_peer_and_silent_peer() -> None:
    """Trickled bytes arrive whole; a peer that goes silent mid-body times out cleanly."""

    async def script(stream: trio.SocketStream, n: int) -> None:
        for answer in (1, 2):
            await read_request(stream)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
            for byte in b"abcd":
                await trio.sleep(0.02)
                await stream.send_all(bytes([byte]))
            if answer == 1:
                await stream.send_all(b"efgh")
        await trio.sleep(5)

    async with server(script) as url:
        pool = WirePool(read_timeout=0.5)
        response = await pool.request("GET", url + "/slow", {})
        assert await views_of(response) == b"abcdefgh"
        await response.aclose()
        await trio.sleep(0.1)
        response = await pool.request("GET", url + "/silent", {})  # the idle one, reused
        with pytest.raises(TransportError, match="no answer within 0.5 s"):
            await views_of(response)
        await pool.aclose()


async def test_read_some_after_a_relay_started_gives_bytes() -> None:
    async def script(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
        await trio.sleep(0.05)
        await stream.send_all(b"cdef")

    async with server(script) as url:
        pool = WirePool()
        response = await pool.request("GET", url + "/blob", {})
        first = await response.read_view()
        assert bytes(first) == b"ab"
        rest = await body_of(response)
        assert rest == b"cdef" and isinstance(rest, bytes)
        await pool.aclose()


async def test_file_span_body_goes_out_by_sendfile_with_exact_length(tmp_path: Path) -> None:
    from ocync.registry.bodyrelay import FileSpan

    payload = bytes(range(256)) * 20_000
    path = tmp_path / "blob"
    path.write_bytes(payload)
    received: list[bytes] = []

    async def script(stream: trio.SocketStream, n: int) -> None:
        received.append(await read_request(stream))
        await stream.send_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    class Spans:
        def __init__(self, fd: int, spans: list[tuple[int, int]]) -> None:
            self.items = [FileSpan(fd, offset, count) for offset, count in spans]

        def __aiter__(self) -> Spans:
            return self

        async def __anext__(self) -> FileSpan:
            if not self.items:
                raise StopAsyncIteration
            return self.items.pop(0)

    fd = os.open(path, os.O_RDONLY)
    try:
        async with server(script) as url:
            pool = WirePool()
            headers = {"Content-Length": str(len(payload))}
            half = len(payload) // 2
            response = await pool.request("PUT", url + "/up", headers, Spans(fd, [(0, half), (half, len(payload) - half)]))
            assert response.status == 201
            await response.aclose()
            # one byte short of the declared length: h11 refuses to end the message
            with pytest.raises(TransportError):
                await pool.request("PUT", url + "/up", headers, Spans(fd, [(0, len(payload) - 1)]))
            await pool.aclose()
    finally:
        os.close(fd)
    assert received[0].endswith(b"\r\n\r\n" + payload)


async def test_stale_connection_after_a_relayed_body_is_not_reused() -> None:
    async def script(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await stream.aclose()  # closes while the client holds it idle

    async with server(script) as url:
        pool = WirePool()
        for _ in range(2):
            response = await pool.request("GET", url + "/blob", {})
            assert await views_of(response) == b"hello"
            await trio.sleep(0.05)  # let the server's close arrive
        stats = pool.statistics()
        await pool.aclose()
    assert stats.connections_opened == 2 and stats.connections_reused == 0
