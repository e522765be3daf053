"""The mock over real sockets (httpx as the client): OCI flows, GHCR acceptance counts, auth,
blob redirects and leak counting, stats and the access log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from mockregistry import MockOptions, serve_mock
from mockregistry.server import MockRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(x),
                    "size": len(x)} for x in layers],
    }).encode()


@asynccontextmanager
async def running(options: MockOptions, **kwargs: Any) -> AsyncIterator[tuple[MockRegistry, httpx.AsyncClient]]:
    async with serve_mock(options, **kwargs) as mock, httpx.AsyncClient(base_url=mock.url, timeout=10) as client:
        yield mock, client


async def upload(client: httpx.AsyncClient, repo: str, data: bytes, parts: int = 1,
                 headers: dict[str, str] | None = None, ranged: bool = False) -> httpx.Response:
    post = await client.post(f"/v2/{repo}/blobs/uploads/", headers=headers)
    assert post.status_code == 202, post.text
    location = post.headers["location"]
    size = -(-len(data) // parts)
    for start in range(0, len(data), size):
        chunk = data[start:start + size]
        extra = {"Content-Range": f"{start}-{start + len(chunk) - 1}"} if ranged else {}
        patch = await client.patch(location, content=chunk, headers={**(headers or {}), **extra})
        assert patch.status_code == 202, patch.text
        location = patch.headers["location"]
    sep = "&" if "?" in location else "?"
    return await client.put(f"{location}{sep}digest={sha(data)}", headers=headers)


async def test_generic_push_pull_round_trip() -> None:
    async with running(MockOptions()) as (mock, client):
        layer = bytes(range(256)) * 4096  # 1 MiB
        put = await upload(client, "lib/app", layer, parts=3, ranged=True)
        assert put.status_code == 201 and put.headers["docker-content-digest"] == sha(layer)
        assert put.headers["location"].endswith(f"/v2/lib/app/blobs/{sha(layer)}")
        mono = await client.post(f"/v2/lib/app/blobs/uploads/?digest={sha(b'{}')}", content=b"{}")
        assert mono.status_code == 201
        manifest = image(b"{}", [layer])
        resp = await client.put("/v2/lib/app/manifests/1.0", content=manifest,
                                headers={"Content-Type": OCI_MANIFEST})
        assert resp.status_code == 201 and resp.headers["docker-content-digest"] == sha(manifest)
        head = await client.head(f"/v2/lib/app/blobs/{sha(layer)}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(layer))
        assert head.headers["docker-distribution-api-version"] == "registry/2.0"
        got = await client.get(f"/v2/lib/app/blobs/{sha(layer)}")
        assert got.content == layer
        part = await client.get(f"/v2/lib/app/blobs/{sha(layer)}", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == layer[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(layer)}"
        pulled = await client.get("/v2/lib/app/manifests/1.0", headers={"Accept": OCI_MANIFEST})
        assert pulled.content == manifest and pulled.headers["content-type"] == OCI_MANIFEST
        catalog = await client.get("/v2/_catalog")
        assert catalog.json() == {"repositories": ["lib/app"]}
        stats = (await client.get("/_mock/stats")).json()
        assert stats == {**mock.stats(), "timeline": stats["timeline"]}
        assert stats["by_kind"]["upload_patch"] == 3 and stats["blobs"] == 2
        assert stats["blob_bytes"] == len(layer) + 2
        assert stats["bytes_in"] >= len(layer) + len(manifest)
        assert stats["requests_total"] == sum(stats["by_kind"].values())


async def test_ghcr_multi_patch_upload_fails_single_patch_succeeds() -> None:
    async with running(MockOptions(profile="ghcr", blob_redirect=False)) as (mock, client):
        blob = b"ghcr" * 50_000
        three = await upload(client, "acme/app", blob, parts=3)
        assert three.status_code == 400
        assert [e["code"] for e in three.json()["errors"]] == ["DIGEST_INVALID"]
        one = await upload(client, "acme/app", blob, parts=1)
        assert one.status_code == 201
        assert mock.stats()["digest_invalid"] == 1


async def test_ghcr_mount_same_namespace_201_cross_namespace_202() -> None:
    async with running(MockOptions(profile="ghcr", blob_redirect=False)) as (mock, client):
        blob = b"shared base layer"
        assert (await upload(client, "acme/base", blob)).status_code == 201
        assert (await upload(client, "other/base", blob)).status_code == 201
        cross = await client.post(f"/v2/acme/app/blobs/uploads/?mount={sha(blob)}&from=other/base")
        assert cross.status_code == 202
        assert cross.headers["location"].startswith("/v2/acme/app/blobs/upload/")
        same = await client.post(f"/v2/acme/app/blobs/uploads/?mount={sha(blob)}&from=acme/base")
        assert same.status_code == 201
        assert same.headers["location"] == f"/v2/acme/app/blobs/{sha(blob)}"
        stats = mock.stats()
        assert stats["by_kind"]["mount"] == 2 and stats["uploads_abandoned"] == 1


class HandClock:
    """A clock the test moves by hand, so window counts are exact regardless of machine load."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_ghcr_rate_limit_exact_window() -> None:
    clock = HandClock()
    options = MockOptions(profile="ghcr", rate_limit="20/1s", blob_redirect=False)
    async with running(options, clock=clock) as (mock, client):
        for i in range(20):
            clock.now = i * 0.01
            assert (await client.get("/v2/")).status_code == 200, f"request {i + 1} of 20"
        clock.now = 0.5
        over = await client.get("/v2/")
        assert over.status_code == 429 and "retry-after" not in over.headers
        assert over.json() == {"errors": [{"code": "TOOMANYREQUESTS",
                                           "message": "retry-after: 500ms, allowed: 20/second"}]}
        clock.now = 1.0  # the first request slides out: exactly one slot
        assert (await client.get("/v2/")).status_code == 200
        assert (await client.get("/v2/")).status_code == 429
        clock.now = 2.5
        assert [(await client.get("/v2/")).status_code for _ in range(3)] == [200] * 3
        stats = mock.stats()
        principal = stats["per_principal"]["127.0.0.1"]
        assert (principal["throttled"], principal["peak_window"], stats["throttled"]) == (2, 20, 2)
        assert stats["by_status"] == {"200": 24, "429": 2}


async def test_ghcr_rate_limit_on_trio_clock(mock_clock: trio.testing.MockClock) -> None:
    """The default clock (trio's), driven by a MockClock: 21 requests at once get 20 x 200 and a
    429, and once the window has slid past them the next request is served."""
    options = MockOptions(profile="ghcr", rate_limit="20/1s", blob_redirect=False)
    async with running(options) as (_, client):
        statuses = [(await client.get("/v2/")).status_code for _ in range(21)]
        assert statuses == [200] * 20 + [429]
        mock_clock.jump(0.99)
        assert (await client.get("/v2/")).status_code == 429
        mock_clock.jump(0.06)
        assert (await client.get("/v2/")).status_code == 200


async def test_blob_redirect_and_auth_leaks(tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    options = MockOptions(profile="ghcr", auth="token", users={"alice": "pat-a"}, public=["*"],
                          access_log=log)
    async with running(options) as (mock, client):
        assert mock.storage_url is not None and mock.storage_url != mock.url
        token = (await client.get("/token", params={"scope": "repository:alice/app:pull,push"},
                                  auth=("alice", "pat-a"))).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        blob = b"redirected bytes" * 1000
        assert (await upload(client, "alice/app", blob, headers=auth)).status_code == 201
        redirect = await client.get(f"/v2/alice/app/blobs/{sha(blob)}", headers=auth)
        assert redirect.status_code == 307
        target = redirect.headers["location"]
        assert target.startswith(mock.storage_url) and "sig=" in target and "expires=" in target
        # httpx drops Authorization when a redirect leaves the origin: no leak.
        followed = await client.get(f"/v2/alice/app/blobs/{sha(blob)}", headers=auth, follow_redirects=True)
        assert followed.content == blob
        assert mock.stats()["auth_leaks"] == 0
        async with httpx.AsyncClient() as raw:
            leaked = await raw.get(target, headers=auth)
            assert leaked.content == blob
            assert (await raw.get(target.replace("sig=", "sig=0"))).status_code == 403
        stats = mock.stats()
        assert stats["auth_leaks"] == 1 and stats["by_kind"]["storage_get"] == 3
        # storage requests are not rate-limited principals' requests
        assert "alice" in stats["per_principal"] and stats["per_principal"]["alice"]["requests"] == 6
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == stats["requests_total"]
    assert {"kind", "status", "principal", "bytes_out", "ms"} <= set(lines[0])
    assert [line["kind"] for line in lines].count("storage_get") == 3


async def test_token_flow_over_http() -> None:
    options = MockOptions(profile="ghcr", auth="token", users={"alice": "pat-a"}, public=["pub/*"],
                          blob_redirect=False)
    async with running(options) as (mock, client):
        challenge = await client.get("/v2/pub/x/tags/list")
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"] == (
            f'Bearer realm="{mock.url}/token",service="{mock.host}",scope="repository:pub/x:pull"')
        anon = await client.get("/token", params={"service": mock.host, "scope": "repository:pub/x:pull"})
        assert anon.status_code == 200 and set(anon.json()) == {"token"}
        private = await client.get("/token", params={"scope": "repository:alice/x:pull"})
        assert private.status_code == 401
        push = await client.post("/v2/pub/x/blobs/uploads/",
                                 headers={"Authorization": f"Bearer {anon.json()['token']}"})
        assert push.status_code == 403 and push.json()["errors"][0]["code"] == "DENIED"
        direct = await client.post("/v2/alice/x/blobs/uploads/", headers={"Authorization": "Bearer pat-a"})
        assert direct.status_code == 202


async def test_keep_alive_serves_many_requests_per_connection() -> None:
    async with serve_mock(MockOptions()) as mock:
        stream = await trio.open_tcp_stream("127.0.0.1", int(mock.url.rsplit(":", 1)[1]))
        request = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
        await stream.send_all(request * 50)  # pipelined
        received = b""
        with trio.fail_after(5):
            while received.count(b"HTTP/1.1 200 OK") < 50:
                received += await stream.receive_some(65536)
        await stream.aclose()
        assert mock.stats()["by_kind"]["ping"] == 50


async def test_concurrent_clients() -> None:
    """Many connections pushing and pulling at once: every digest round-trips, counts add up."""
    async with running(MockOptions(profile="ghcr", rate_limit="off")) as (mock, _):
        results: list[bool] = []

        async def worker(i: int) -> None:
            blob = (f"worker {i} ".encode()) * (20_000 + i)
            async with httpx.AsyncClient(base_url=mock.url, timeout=20) as client:
                resp = await upload(client, f"acme/w{i % 4}", blob)
                assert resp.status_code == 201
                got = await client.get(f"/v2/acme/w{i % 4}/blobs/{sha(blob)}", follow_redirects=True)
                results.append(got.content == blob)
                for _ in range(10):
                    assert (await client.head(f"/v2/acme/w{i % 4}/blobs/{sha(blob)}")).status_code == 200

        async with trio.open_nursery() as nursery:
            for i in range(24):
                nursery.start_soon(worker, i)
        assert results == [True] * 24
        stats = mock.stats()
        assert stats["by_kind"]["blob_head"] == 240 and stats["by_kind"]["storage_get"] == 24
        assert stats["blobs"] == 24 and stats["auth_leaks"] == 0


async def test_stalled_peer_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from mockregistry import connection

    monkeypatch.setattr(connection, "READ_TIMEOUT", 0.3)
    async with serve_mock(MockOptions()) as mock, httpx.AsyncClient(base_url=mock.url) as client:
        stream = await trio.open_tcp_stream("127.0.0.1", int(mock.host.rsplit(":", 1)[1]))
        await stream.send_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        with trio.fail_after(5):
            assert await stream.receive_some(1024) == b""  # the server gave up on us and closed
        await stream.aclose()
        assert (await client.get("/v2/")).status_code == 200
