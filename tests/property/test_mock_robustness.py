"""Malformed requests and random bytes never crash or hang the mock (h11's fuzz invariant,
`h11/fuzz/afl-server.py`): each gets a 4xx or a closed connection, and correct requests keep
working throughout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockregistry import MockOptions, serve_mock
from mockregistry.server import MockRegistry


@pytest.fixture(scope="module")
def mock() -> Iterator[MockRegistry]:
    """One mock in a background trio thread, shared by every example."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            options = MockOptions(profile="ghcr", rate_limit="off", blob_redirect=False,
                                  referrers_api=True)
            async with serve_mock(options) as running:
                box["mock"] = running
                box["token"] = trio.lowlevel.current_trio_token()
                box["stop"] = trio.Event()
                ready.set()
                await box["stop"].wait()

        trio.run(main)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "mock did not start"
    yield box["mock"]
    trio.from_thread.run_sync(box["stop"].set, trio_token=box["token"])
    thread.join(10)


def exchange(mock: MockRegistry, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, half-close, and read until the server closes (a hang fails the test)."""
    port = int(mock.host.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have answered and closed
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"server hung on {data[:200]!r}")
    return received


def statuses(received: bytes) -> list[int]:
    codes = []
    for line in received.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            codes.append(int(line[9:12]))
    return codes


def assert_still_serving(mock: MockRegistry) -> None:
    reply = exchange(mock, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]


methods = st.sampled_from([b"GET", b"HEAD", b"PUT", b"POST", b"PATCH", b"DELETE", b"BREW", b"", b"G\x00T"])
targets = st.one_of(
    st.sampled_from([b"/v2/", b"/v2/a/blobs/uploads/", b"/v2/a/manifests/x", b"/v2/a/tags/list?n=-1",
                     b"/v2/A/B/blobs/sha256:zz", b"/v2/a/referrers/sha256:00", b"/token?scope=%%%",
                     b"/v2/_catalog?n=99999999999999999999", b"*", b"", b"/v2/a/blobs/upload/../../x"]),
    st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
header_names = st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Content-Range",
                                b"Range", b"Authorization", b"Content-Type", b"Expect", b"X\x01", b""])
header_values = st.one_of(
    st.sampled_from([b"-1", b"abc", b"99999999999999999999", b"chunked", b"bytes=5-1", b"0-",
                     b"Bearer", b"Basic !!!", b"100-continue", b"0"]),
    st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
requests = st.builds(
    lambda m, t, hs, body, version: m + b" " + t + b" " + version + b"\r\n"
    + b"".join(k + b": " + v + b"\r\n" for k, v in hs) + b"\r\n" + body,
    methods, targets, st.lists(st.tuples(header_names, header_values), max_size=5),
    st.binary(max_size=200), st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"JUNK"]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=1000))
def test_random_bytes_get_4xx_or_close(mock: MockRegistry, data: bytes) -> None:
    received = exchange(mock, data)
    codes = statuses(received)
    assert all(400 <= code < 500 for code in codes), f"{codes} for {data[:200]!r}"
    if received:
        assert received.startswith(b"HTTP/1.1 4"), received[:100]
    assert_still_serving(mock)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=requests)
def test_malformed_requests_never_crash(mock: MockRegistry, data: bytes) -> None:
    """Half-valid requests may succeed (a 2xx), but never make the server fail (5xx) or hang."""
    received = exchange(mock, data)
    codes = statuses(received)
    assert all(code < 500 for code in codes), f"{codes} for {data[:200]!r}"
    if received:
        assert received.startswith(b"HTTP/1.1 "), received[:100]
    assert_still_serving(mock)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"HELLO\r\n\r\n", 400, id="not-http"),
        pytest.param(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
                     id="oversize-headers"),
        pytest.param(b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400,
                     id="bad-content-length"),
        pytest.param(b"GET /v2/ HTTP/1.1\r\n\r\n", 400, id="no-host"),
        pytest.param(b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 400,
                     id="short-body"),
        pytest.param(b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 9999999\r\n\r\n{}", 413,
                     id="oversize-manifest"),
        pytest.param(b"GET /v2/a/tags/list HTTP/1.1\r\nHost: x\r\n\r\n", 404, id="valid-unknown-repo"),
    ],
)
def test_malformed_requests(mock: MockRegistry, data: bytes, status: int) -> None:
    codes = statuses(exchange(mock, data))
    assert codes[:1] == [status]
    assert_still_serving(mock)


def test_stalled_client_does_not_block_others(mock: MockRegistry) -> None:
    port = int(mock.host.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        for _ in range(5):
            assert_still_serving(mock)
