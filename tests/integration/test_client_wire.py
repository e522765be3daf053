"""The blob data plane (h11 on trio streams) against scripted loopback servers: keep-alive
reuse, stale idle connections, truncated and chunked bodies, streamed request bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

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
    assert stats["connections_opened"] == 2 and stats["connections_reused"] == 1
    assert requests[0].startswith(b"GET /v2/x?q=1 HTTP/1.1\r\n")
    assert b"host: 127.0.0.1:" in requests[0].lower()


async def test_truncated_body_is_a_transport_error() -> None:
    async def script(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
        await stream.aclose()

    async with server(script) as url:
        pool = WirePool()
        response = await pool.request("GET", url + "/blob", {})
        with pytest.raises(TransportError, match="truncated|closed"):
            await body_of(response)
        assert pool.statistics()["idle"] == 0
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
