"""Injected faults: every kind shows up on the wire, they replay from the seed, and stored content
is never damaged."""

from __future__ import annotations

import hashlib

import httpx
import trio

from mockregistry import MockOptions, serve_mock

BLOB = bytes(range(256)) * 2048  # 512 KiB
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


async def push_with_retries(client: httpx.AsyncClient) -> None:
    for _ in range(50):
        try:
            resp = await client.post(f"/v2/f/blobs/uploads/?digest={DIGEST}", content=BLOB)
        except httpx.TransportError:
            continue
        if resp.status_code == 201:
            return
    raise AssertionError("could not push through the injected faults in 50 attempts")


async def outcomes(options: MockOptions, count: int) -> tuple[list[str], bytes]:
    """Download the blob ``count`` times; classify each attempt; return the stored bytes too."""
    results: list[str] = []
    async with serve_mock(options) as mock, httpx.AsyncClient(base_url=mock.url, timeout=5) as client:
        await push_with_retries(client)
        for _ in range(count):
            try:
                resp = await client.get(f"/v2/f/blobs/{DIGEST}")
            except httpx.TransportError:
                results.append("dropped")  # reset or truncated body
                continue
            if resp.status_code >= 500:
                results.append(str(resp.status_code))
            elif resp.content == BLOB:
                results.append("ok")
            else:
                assert len(resp.content) == len(BLOB)
                diff = [i for i, (a, b) in enumerate(zip(resp.content, BLOB, strict=True)) if a != b]
                assert len(diff) == 1, "a corrupt body differs in exactly one byte"
                results.append("corrupt")
        source = mock.store.open_content(DIGEST)
        stored = bytes(source.read(0, source.length))
        source.close()
        faults = mock.stats()["faults"]
    assert sum(faults.values()) > 0
    return results, stored


async def test_faults_show_up_and_never_damage_content() -> None:
    options = MockOptions(fault_rate=0.15, reset_rate=0.1, truncate_rate=0.1, corrupt_rate=0.15, seed=11)
    results, stored = await outcomes(options, 60)
    assert stored == BLOB
    kinds = set(results)
    assert {"ok", "corrupt", "dropped"} <= kinds, f"seed 11 gave {results}"
    assert kinds & {"500", "502", "503"}, f"seed 11 gave {results}"


async def test_faults_replay_from_the_seed() -> None:
    options = MockOptions(fault_rate=0.2, truncate_rate=0.2, corrupt_rate=0.2, seed=5)
    first, _ = await outcomes(options, 25)
    second, _ = await outcomes(options, 25)
    assert first == second, "same seed, same sequential requests -> same faults"
    other, _ = await outcomes(MockOptions(fault_rate=0.2, truncate_rate=0.2, corrupt_rate=0.2, seed=6), 25)
    assert other != first


async def test_latency_is_applied() -> None:
    async with serve_mock(MockOptions(latency_ms=60)) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        start = trio.current_time()
        assert (await client.get("/v2/")).status_code == 200
        assert trio.current_time() - start >= 0.06


async def test_reset_during_upload_keeps_server_healthy() -> None:
    async with serve_mock(MockOptions(reset_rate=1.0)) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        post = await client.post("/v2/f/blobs/uploads/")
        path = post.headers["location"].split(mock.host, 1)[1]
        stream = await trio.open_tcp_stream("127.0.0.1", int(mock.host.rsplit(":", 1)[1]))
        head = f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BLOB)}\r\n\r\n".encode()
        received = b""
        with trio.fail_after(5):
            try:
                await stream.send_all(head + BLOB)
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass  # the RST arrived while we were still sending
        await stream.aclose()
        assert received == b"", "a reset answers nothing"
        assert (await client.get("/v2/")).status_code == 200
        assert mock.stats()["by_status"].get("0") == 1  # the aborted exchange is logged as status 0
