"""Early answers over real sockets: a client that writes its whole request before reading (as
h11-based clients do) must read the mock's 416, 413 or 401, not a connection reset.

The mock answers these before it has read the body and then closes; closing a socket with unread
bytes makes the kernel send RST, which can destroy the response in flight. The mock closes the
way production servers do (nginx's lingering_close): answer, half-close, discard what still
arrives for a bounded time and size, then close.
"""

from __future__ import annotations

import json

import h11
import httpx
import pytest
import trio

from mockregistry import MockOptions, serve_mock

BODY = b"x" * (5 * 1024 * 1024)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _send_whole_request_then_read(port: int, method: str, target: str,
                                        headers: list[tuple[str, str]], body: bytes,
                                        chunked: bool = False) -> tuple[h11.Response, bytes]:
    """Write the head and the whole body, then read the response (a reset raises OSError or
    trio.BrokenResourceError, failing the test)."""
    client = h11.Connection(h11.CLIENT)
    framing = [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(len(body)))]
    out = client.send(h11.Request(method=method, target=target,
                                  headers=[("Host", "127.0.0.1"), *headers, *framing]))
    assert out is not None
    step = 1 << 20
    pieces = [out]
    for start in range(0, len(body), step):
        pieces.append(client.send(h11.Data(data=body[start:start + step])) or b"")
    pieces.append(client.send(h11.EndOfMessage()) or b"")
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        with trio.fail_after(30):
            for piece in pieces:
                await stream.send_all(piece)
            response: h11.Response | None = None
            content = b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    content += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
    assert response is not None
    return response, content


def _header(response: h11.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key == name:
            return value.decode()
    return None


async def test_ghcr_ranged_patch_over_4mib_reads_the_416() -> None:
    async with serve_mock(MockOptions(profile="ghcr")) as mock:
        async with httpx.AsyncClient(base_url=mock.url) as client:
            post = await client.post("/v2/acme/app/blobs/uploads/")
        assert post.status_code == 202
        response, content = await _send_whole_request_then_read(
            _port(mock.url), "PATCH", post.headers["location"],
            [("Content-Range", f"0-{len(BODY) - 1}"), ("Content-Type", "application/octet-stream")], BODY)
        assert response.status_code == 416
        assert json.loads(content) == {"errors": [{
            "code": "BLOB_UPLOAD_INVALID",
            "message": "requested range not satisfiable: a ranged PATCH may carry at most 4194304 bytes",
        }]}
        assert mock.stats()["by_status"] == {"202": 1, "416": 1}


async def test_manifest_over_4mib_reads_the_413() -> None:
    async with serve_mock(MockOptions(profile="ghcr")) as mock:
        response, content = await _send_whole_request_then_read(
            _port(mock.url), "PUT", "/v2/acme/app/manifests/latest",
            [("Content-Type", "application/vnd.oci.image.manifest.v1+json")], BODY)
        assert response.status_code == 413
        assert json.loads(content)["errors"][0]["code"] == "MANIFEST_INVALID"


@pytest.mark.parametrize("chunked", [pytest.param(False, id="content-length"),
                                     pytest.param(True, id="chunked")])
async def test_unauthorized_before_the_body_reads_the_401(chunked: bool) -> None:
    options = MockOptions(profile="ghcr", auth="token", users={"alice": "pat-a"})
    async with serve_mock(options) as mock:
        response, content = await _send_whole_request_then_read(
            _port(mock.url), "POST", f"/v2/alice/app/blobs/uploads/?digest=sha256:{'0' * 64}", [],
            BODY, chunked=chunked)
        assert response.status_code == 401
        challenge = _header(response, b"www-authenticate") or ""
        assert challenge.startswith(f'Bearer realm="{mock.url}/token"')
        assert json.loads(content)["errors"][0]["code"] == "UNAUTHORIZED"


async def test_lingering_is_bounded_for_a_peer_that_never_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that keeps sending after the answer is cut off once the linger budget is spent."""
    from mockregistry import connection

    monkeypatch.setattr(connection, "LINGER_SECONDS", 0.5)
    async with serve_mock(MockOptions(profile="ghcr")) as mock:
        async with await trio.open_tcp_stream("127.0.0.1", _port(mock.url)) as stream:
            received = await _send_until_cut_off(stream)
        assert received.startswith(b"HTTP/1.1 413 ")


async def _send_until_cut_off(stream: trio.SocketStream) -> bytes:
    """Announce a 1 GB manifest and keep sending until the server closes; what it answered."""
    await stream.send_all(b"PUT /v2/acme/app/manifests/latest HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                          b"Content-Length: 1000000000\r\n\r\n")
    received = b""
    with trio.fail_after(10):
        try:
            while True:
                await stream.send_all(b"x" * 65536)
                with trio.move_on_after(0.01):
                    received += await stream.receive_some(65536)
        except (trio.BrokenResourceError, OSError):
            pass
    return received
