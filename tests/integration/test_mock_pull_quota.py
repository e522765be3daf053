"""The mock's ``dockerhub`` profile over real sockets: manifest GETs spend a pull quota per
principal (the user when authenticated, the client address when anonymous); HEADs and blob
GETs do not; every answer carries Docker Hub's three headers; over quota a manifest GET gets
429 TOOMANYREQUESTS with Docker Hub's message. The mock's clock is injected, so the rolling
window is moved by hand, not waited for."""

from __future__ import annotations

import base64

import httpx

from mockregistry import MockOptions
from mockregistry.pullquota import PULL_LIMIT_MESSAGE
from tests.integration.test_mock_server import image, running, sha, upload

USER, TOKEN = "alice", "alice-pat"


async def push_one(client: httpx.AsyncClient, repo: str, headers: dict[str, str] | None = None) -> str:
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer-bytes"
    for blob in (config, layer):
        assert (await upload(client, repo, blob, headers=headers)).status_code == 201
    body = image(config, [layer])
    put = await client.put(f"/v2/{repo}/manifests/v1", content=body,
                           headers={**(headers or {}), "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 201, put.text
    return sha(layer)


def remaining(response: httpx.Response) -> int:
    return int(response.headers["ratelimit-remaining"].split(";")[0])


async def test_manifest_gets_spend_the_quota_heads_and_blobs_do_not() -> None:
    now = [1000.0]
    options = MockOptions(profile="dockerhub", pull_limit="3/60s")
    async with running(options, clock=lambda: now[0]) as (mock, client):
        layer = await push_one(client, "library/app")
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        head = await client.head("/v2/library/app/manifests/v1", headers=accept)
        assert head.headers["ratelimit-limit"] == "3;w=60"
        assert head.headers["ratelimit-remaining"] == "3;w=60"
        assert head.headers["docker-ratelimit-source"] == "127.0.0.1"
        assert (await client.get(f"/v2/library/app/blobs/{layer}")).status_code == 200
        gets = [await client.get("/v2/library/app/manifests/v1", headers=accept) for _ in range(3)]
        assert [g.status_code for g in gets] == [200, 200, 200]
        assert [remaining(g) for g in gets] == [2, 1, 0]
        over = await client.get("/v2/library/app/manifests/v1", headers=accept)
        assert over.status_code == 429
        assert over.json()["errors"][0]["message"] == PULL_LIMIT_MESSAGE
        assert over.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert remaining(over) == 0
        # HEADs and blobs still answer over quota (they are not pulls)
        assert (await client.head("/v2/library/app/manifests/v1", headers=accept)).status_code == 200
        assert (await client.get(f"/v2/library/app/blobs/{layer}")).status_code == 200
        stats = mock.statistics()
        assert stats["pulls"]["127.0.0.1"] == {"pulls": 3, "refused": 1, "in_window": 3, "remaining": 0}
        assert stats["by_kind"]["manifest_get"] == 4 and stats["throttled"] == 1
        now[0] += 60.0  # the rolling window passes: every pull has left it
        again = await client.get("/v2/library/app/manifests/v1", headers=accept)
        assert again.status_code == 200 and remaining(again) == 2


async def test_authenticated_pulls_count_by_user_anonymous_ones_by_address() -> None:
    now = [0.0]
    options = MockOptions(profile="dockerhub", pull_limit="5/1h", auth="token", users={USER: TOKEN},
                          user_namespaces={USER: ["library"]}, public=["library/*"])
    async with running(options, clock=lambda: now[0]) as (mock, client):
        basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()}
        await push_one(client, "alice/app", basic)
        await push_one(client, "library/pub", basic)
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        token = (await client.get("/token", params={"scope": "repository:library/pub:pull"})).json()["token"]
        anonymous = {**accept, "Authorization": f"Bearer {token}"}
        got = await client.get("/v2/library/pub/manifests/v1", headers=anonymous)
        assert got.status_code == 200 and remaining(got) == 4
        assert got.headers["docker-ratelimit-source"] == "127.0.0.1"
        mine = await client.get("/v2/alice/app/manifests/v1", headers={**accept, **basic})
        assert mine.status_code == 200 and remaining(mine) == 4  # a quota of its own
        assert mine.headers["docker-ratelimit-source"] == USER
        pulls = mock.statistics()["pulls"]
        assert pulls["127.0.0.1"]["pulls"] == 1 and pulls[USER]["pulls"] == 1
        assert mock.statistics()["per_principal"]  # the request windows still track both
