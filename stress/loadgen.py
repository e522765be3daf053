"""A lean HTTP/1.1 load generator on raw sockets, so benchmarks measure the server, not the client.

httpx spends more CPU per request and per byte than the mock does; on a 2-core machine it would
be the bottleneck. Here requests are prebuilt bytes, bodies stream from one reused buffer and
responses are read with `recv_into` into a fixed buffer (what `wrk` does, in Python).
"""

from __future__ import annotations

import hashlib
import selectors
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

RECV_BUFFER = 1 << 20  # 1 MiB reads: large enough that syscalls are not the cost


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes  # empty when the body was discarded (sink=True) or absent
    body_length: int


def split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class RawConnection:
    """One keep-alive connection. Not thread-safe; one per thread or per selector slot."""

    def __init__(self, url: str, *, timeout: float = 120.0) -> None:
        self.host, self.port = split_url(url)
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.pending = b""

    def close(self) -> None:
        self.sock.close()

    def head_bytes(self, method: str, target: str, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _read_head(self) -> tuple[int, dict[str, str]]:
        data = self.pending
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection before a response")
            data += chunk
        head, _, self.pending = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def _read_body(self, length: int, *, sink: bool, hasher: hashlib._Hash | None) -> bytes:
        kept = bytearray()
        first = self.pending[:length]
        self.pending = self.pending[length:]
        if hasher is not None:
            hasher.update(first)
        if not sink:
            kept += first
        remaining = length - len(first)
        while remaining > 0:
            n = self.sock.recv_into(self.view[: min(remaining, RECV_BUFFER)])
            if n == 0:
                raise ConnectionError(f"body cut short: {remaining} bytes missing")
            if hasher is not None:
                hasher.update(self.view[:n])
            if not sink:
                kept += self.view[:n]
            remaining -= n
        return bytes(kept)

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | memoryview | None = None,
        body_repeat: int = 1,
        sink: bool = False,
        hasher: hashlib._Hash | None = None,
    ) -> Response:
        """Send a request whose body is `body` repeated `body_repeat` times; read the response."""
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Length"] = str(len(body) * body_repeat)
        self.sock.sendall(self.head_bytes(method, target, all_headers))
        if body is not None:
            for _ in range(body_repeat):
                self.sock.sendall(body)
        status, response_headers = self._read_head()
        length = 0
        if method != "HEAD" and status not in (204, 304):
            if "content-length" not in response_headers:
                raise ConnectionError(f"{method} {target}: response without Content-Length")
            length = int(response_headers["content-length"])
        data = self._read_body(length, sink=sink, hasher=hasher)
        return Response(status, response_headers, data, length)


def upload_blob(
    conn: RawConnection,
    repo: str,
    chunk: bytes,
    repeat: int,
    digest: str,
    *,
    streamed: bool = False,
) -> Response:
    """POST + PUT ?digest= with the body (monolithic), or POST + one PATCH + PUT (streamed)."""
    start = conn.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"")
    if start.status != 202:
        raise RuntimeError(f"POST upload -> {start.status}")
    location = _request_target(start.headers["location"])
    octet = {"Content-Type": "application/octet-stream"}
    if streamed:
        patched = conn.request("PATCH", location, headers=octet, body=chunk, body_repeat=repeat)
        if patched.status != 202:
            raise RuntimeError(f"PATCH upload -> {patched.status}")
        location = _request_target(patched.headers.get("location", location))
        chunk, repeat = b"", 1  # the body went with the PATCH
    sep = "&" if "?" in location else "?"
    done = conn.request(
        "PUT", f"{location}{sep}digest={digest}", headers=octet, body=chunk, body_repeat=repeat
    )
    if done.status != 201:
        raise RuntimeError(f"PUT upload -> {done.status}: {done.body[:200]!r}")
    return done


def _request_target(location: str) -> str:
    """An upload Location as a request target on this connection (absolute URL -> path?query)."""
    if not location.startswith("http"):
        return location
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def repeated_digest(chunk: bytes, repeat: int) -> str:
    hasher = hashlib.sha256()
    for _ in range(repeat):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


@dataclass(frozen=True, slots=True)
class RateResult:
    requests: int
    errors: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def hammer_heads(url: str, target: str, *, connections: int, seconds: float) -> RateResult:
    """Keep `connections` keep-alive connections busy with HEAD `target` for `seconds`.

    One thread and a selector: each connection has exactly one request in flight (no
    pipelining), like a client with that many concurrent workers.
    """
    conns = [RawConnection(url) for _ in range(connections)]
    request = conns[0].head_bytes("HEAD", target)
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    for conn in conns:
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        buffers[conn.sock.fileno()] = b""
    done = errors = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        for conn in conns:
            conn.sock.send(request)
        while True:
            now = time.perf_counter()
            if now >= deadline:
                break
            for key, _ in selector.select(timeout=deadline - now):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed a keep-alive connection")
                data = buffers[sock.fileno()] + chunk
                while b"\r\n\r\n" in data:  # HEAD responses have no body
                    head, _, data = data.partition(b"\r\n\r\n")
                    done += 1
                    if not head.startswith(b"HTTP/1.1 200"):
                        errors += 1
                    sock.send(request)
                buffers[sock.fileno()] = data
        elapsed = time.perf_counter() - start
    finally:
        selector.close()
        for conn in conns:
            conn.close()
    return RateResult(done, errors, elapsed)
