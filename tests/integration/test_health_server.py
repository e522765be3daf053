"""The health server over a real socket: routes, bad requests answered 400, and a port already
taken as one line (exit 2) from the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from ocync.service.health import Response, serve_health


def route(method: str, path: str) -> Response:
    if method != "GET":
        return Response(405, b"no\n")
    return Response(200, path.encode()) if path == "/healthz" else Response(404, b"?\n")


async def ask(port: int, raw: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        data = bytearray()
        while chunk := await stream.receive_some(4096):
            data += chunk
    return bytes(data)


async def test_routes_and_bad_requests() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_health, route, "127.0.0.1", 0)
        ok = await ask(port, b"GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"/healthz")
        assert b"connection: close" in ok.lower()
        assert (await ask(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 404 ")
        assert (await ask(port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")).startswith(b"HTTP/1.1 405 ")
        assert (await ask(port, b"NOT HTTP AT ALL\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        nursery.cancel_scope.cancel()


async def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    cfg = tmp_path / "ocync.yaml"
    cfg.write_text("registries:\n  src: {url: '127.0.0.1:9'}\n  dst: {url: '127.0.0.1:9'}\n"
                   f"global: {{cache_dir: '{tmp_path}'}}\n"
                   "defaults: {source: src, targets: dst}\nmappings:\n  - {from: a/b, to: c/b}\n")
    try:
        out = await trio.to_thread.run_sync(lambda: subprocess.run(
            [sys.executable, "-m", "ocync", "watch", "-c", str(cfg), "--health-port", str(port)],
            capture_output=True, text=True, timeout=60))
    finally:
        for listener in listeners:
            await listener.aclose()
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"ocync: error: --health-port {port}: cannot listen on 127.0.0.1: Address already in use"]
