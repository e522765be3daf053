"""The mock's request handlers driven directly (no sockets): OCI flows, GHCR quirks, auth, limits."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import trio
import trio.testing

from mockregistry.app import Registry
from mockregistry.content import parse_range
from mockregistry.http import BytesBody, Request, Response
from mockregistry.manifests import OCI_INDEX, OCI_MANIFEST, check_manifest
from mockregistry.quirks import MockOptions
from mockregistry.routes import classify
from mockregistry.server import build_registry
from mockregistry.uploads import parse_content_range


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make(clock: Clock | None = None, **options: Any) -> Registry:
    return build_registry(MockOptions(**options), clock=clock or Clock())


async def call(
    reg: Registry,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    client: str = "10.0.0.9",
    chunk: int = 1 << 20,
) -> Response:
    req = Request(
        method,
        target,
        {k.lower(): v for k, v in (headers or {}).items()},
        client,
        BytesBody(body, chunk),
    )
    resp = await reg.handle(req)
    reg.record(req, resp, resp.content_length, 0.0)
    return resp


def location_path(resp: Response) -> str:
    loc = resp.header("Location")
    assert loc is not None
    return loc.split("://", 1)[1].split("/", 1)[1].join(["/", ""]) if "://" in loc else loc


def codes(resp: Response) -> list[str]:
    return [e["code"] for e in json.loads(resp.body)["errors"]]


def image(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha(x),
                "size": len(x),
            }
            for x in layers
        ],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


async def push_blob(
    reg: Registry, repo: str, data: bytes, headers: dict[str, str] | None = None
) -> None:
    resp = await call(reg, "POST", f"/v2/{repo}/blobs/uploads/?digest={sha(data)}", data, headers)
    assert resp.status == 201, resp.body


@pytest.mark.parametrize(
    ("method", "path", "query", "kind"),
    [
        pytest.param("GET", "/v2/", {}, "ping", id="ping"),
        pytest.param("GET", "/token", {}, "token", id="token"),
        pytest.param("HEAD", "/v2/a/b/blobs/sha256:x", {}, "blob_head", id="blob-head"),
        pytest.param("GET", "/v2/a/blobs/sha256:x", {}, "blob_get", id="blob-get"),
        pytest.param("DELETE", "/v2/a/blobs/sha256:x", {}, "other", id="blob-delete"),
        pytest.param("POST", "/v2/a/blobs/uploads/", {}, "upload_post", id="upload-post"),
        pytest.param("POST", "/v2/a/blobs/uploads/", {"mount": ["d"]}, "mount", id="mount"),
        pytest.param("PATCH", "/v2/a/blobs/upload/u1", {}, "upload_patch", id="patch-ghcr-shape"),
        pytest.param("PUT", "/v2/a/blobs/uploads/u1", {}, "upload_put", id="upload-put"),
        pytest.param("GET", "/v2/a/blobs/uploads/u1", {}, "upload_get", id="upload-get"),
        pytest.param("DELETE", "/v2/a/blobs/uploads/u1", {}, "upload_delete", id="upload-delete"),
        pytest.param("HEAD", "/v2/a/manifests/v1", {}, "manifest_head", id="manifest-head"),
        pytest.param("PUT", "/v2/a/manifests/v1", {}, "manifest_put", id="manifest-put"),
        pytest.param("DELETE", "/v2/a/manifests/v1", {}, "manifest_delete", id="manifest-delete"),
        pytest.param("GET", "/v2/a/b/c/tags/list", {}, "tags_list", id="tags"),
        pytest.param("GET", "/v2/a/referrers/sha256:x", {}, "referrers", id="referrers"),
        pytest.param("GET", "/v2/_catalog", {}, "catalog", id="catalog"),
        pytest.param("GET", "/v3/nothing", {}, "other", id="other"),
        pytest.param("POST", "/v2/a/b/blobs/uploads", {}, "upload_post", id="upload-post-no-slash"),
        pytest.param("GET", "/v2/tags/list", {}, "other", id="tags-without-name"),
        pytest.param("GET", "/v2/a/blobs/", {}, "other", id="blob-without-digest"),
        pytest.param("GET", "/v2/x/blobs/y/manifests/v1", {}, "manifest_get", id="name-with-blobs"),
    ],
)
def test_classify(method: str, path: str, query: dict[str, list[str]], kind: str) -> None:
    assert classify(method, path, query)[0] == kind


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        pytest.param("bytes=0-9", 100, (0, 9), id="first-ten"),
        pytest.param("bytes=90-", 100, (90, 99), id="open-end"),
        pytest.param("bytes=-5", 100, (95, 99), id="suffix"),
        pytest.param("bytes=50-500", 100, (50, 99), id="clamped"),
        pytest.param("bytes=100-", 100, None, id="past-end"),
        pytest.param("bytes=5-1", 100, None, id="reversed"),
        pytest.param("items=0-1", 100, None, id="unit"),
        pytest.param("bytes=-", 100, None, id="empty"),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("0-99", (0, 99), id="oci"),
        pytest.param("bytes 100-199/*", (100, 199), id="http-style"),
        pytest.param("bytes=5-9/10", (5, 9), id="equals"),
        pytest.param("9-5", None, id="reversed"),
        pytest.param("x", None, id="garbage"),
    ],
)
def test_parse_content_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        pytest.param(b"{nope", OCI_MANIFEST, "MANIFEST_INVALID", id="bad-json"),
        pytest.param(b"[]", OCI_MANIFEST, "MANIFEST_INVALID", id="not-object"),
        pytest.param(b"[" * 100000, OCI_MANIFEST, "MANIFEST_INVALID", id="nesting-bomb"),
        pytest.param(image(b"c", []), None, "MANIFEST_INVALID", id="no-content-type"),
        pytest.param(image(b"c", []), "text/plain", "MANIFEST_INVALID", id="unknown-type"),
        pytest.param(image(b"c", []), OCI_INDEX, "MANIFEST_INVALID", id="type-mismatch"),
        pytest.param(
            image(b"c", [], schemaVersion=1), OCI_MANIFEST, "MANIFEST_INVALID", id="schema1"
        ),
        pytest.param(
            json.dumps(
                {"schemaVersion": 2, "config": {"digest": "sha256:zz"}, "layers": []}
            ).encode(),
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            id="bad-descriptor",
        ),
    ],
)
def test_check_manifest_rejects(body: bytes, content_type: str | None, code: str) -> None:
    result = check_manifest(body, content_type)
    assert isinstance(result, Response) and result.status == 400
    assert codes(result) == [code]


def test_check_manifest_records_subject_and_artifact_type() -> None:
    subject = {"mediaType": OCI_MANIFEST, "digest": sha(b"s"), "size": 1}
    body = image(b"c", [b"l"], subject=subject, annotations={"a": "b"})
    result = check_manifest(body, OCI_MANIFEST + "; charset=utf-8")
    assert not isinstance(result, Response)
    assert result.record.digest == sha(body)
    assert result.record.subject == sha(b"s")
    assert result.record.artifact_type == "application/vnd.oci.image.config.v1+json"
    assert result.blobs == (sha(b"c"), sha(b"l"))


async def test_chunked_streamed_and_monolithic_uploads() -> None:
    reg = make()
    data = bytes(range(256)) * 40
    post = await call(reg, "POST", "/v2/a/b/blobs/uploads/")
    assert post.status == 202 and post.header("Range") == "0-0"
    loc = location_path(post)
    first = await call(reg, "PATCH", loc, data[:1000], {"Content-Range": "0-999"})
    assert first.status == 202 and first.header("Range") == "0-999"
    # Out of order: 416, and the upload keeps its 1000 bytes.
    bad = await call(reg, "PATCH", location_path(first), data[:10], {"Content-Range": "5-14"})
    assert bad.status == 416 and bad.header("Range") == "0-999"
    status = await call(reg, "GET", location_path(first))
    assert status.status == 204 and status.header("Range") == "0-999"
    streamed = await call(reg, "PATCH", location_path(first), data[1000:], chunk=333)
    assert streamed.header("Range") == f"0-{len(data) - 1}"
    done = await call(reg, "PUT", location_path(streamed) + f"&digest={sha(data)}")
    assert done.status == 201 and done.header("Docker-Content-Digest") == sha(data)
    head = await call(reg, "HEAD", f"/v2/a/b/blobs/{sha(data)}")
    assert head.status == 200 and head.content_length == len(data)
    # Monolithic POST and POST + PUT with the whole body.
    await push_blob(reg, "a/b", b"config")
    post = await call(reg, "POST", "/v2/a/b/blobs/uploads/")
    put = await call(reg, "PUT", location_path(post) + f"&digest={sha(b'xyz')}", b"xyz")
    assert put.status == 201
    assert reg.store.has_blob("a/b", sha(b"xyz")) and not reg.store.has_blob("other", sha(b"xyz"))


async def test_digest_mismatch_stores_nothing() -> None:
    reg = make()
    post = await call(reg, "POST", "/v2/r/blobs/uploads/")
    resp = await call(reg, "PUT", location_path(post) + f"&digest={sha(b'other')}", b"data")
    assert resp.status == 400 and codes(resp) == ["DIGEST_INVALID"]
    assert not reg.store.has_content(sha(b"data")) and not reg.store.has_content(sha(b"other"))
    assert reg.statistics()["blobs"] == 0
    # Like distribution, the session stays open with the PUT body appended; the POST's Location
    # is now stale (its `_state` says offset 0) and is refused.
    again = await call(reg, "PUT", location_path(post) + f"&digest={sha(b'data')}")
    assert again.status == 404 and codes(again) == ["BLOB_UPLOAD_INVALID"]
    bare = location_path(post).split("?", 1)[0]
    status = await call(reg, "GET", bare)
    assert status.status == 204 and status.header("Range") == "0-3"
    assert (await call(reg, "PUT", f"{bare}?digest={sha(b'data')}")).status == 201
    mono = await call(reg, "POST", f"/v2/r/blobs/uploads/?digest={sha(b'x')}", b"y")
    assert mono.status == 400
    # An unparsable digest is refused before the body and leaves the session open (distribution).
    post = await call(reg, "POST", "/v2/r/blobs/uploads/")
    bad = await call(reg, "PUT", location_path(post) + "&digest=sha256:nothex", b"data")
    assert bad.status == 400 and codes(bad) == ["DIGEST_INVALID"]
    assert (await call(reg, "GET", location_path(post))).status == 204
    stats = reg.statistics()
    assert stats["digest_invalid"] == 3 and stats["blobs"] == 1


async def test_ghcr_last_patch_wins() -> None:
    reg = make(profile="ghcr")
    data = b"0123456789" * 300

    async def upload(parts: list[bytes]) -> Response:
        post = await call(reg, "POST", "/v2/acme/app/blobs/uploads/")
        loc = location_path(post)
        assert loc.startswith("/v2/acme/app/blobs/upload/")
        for part in parts:
            resp = await call(reg, "PATCH", loc, part)
            assert resp.status == 202
            loc = location_path(resp)
        return await call(reg, "PUT", f"{loc}?digest={sha(data)}")

    three = await upload([data[:1000], data[1000:2000], data[2000:]])
    assert three.status == 400 and codes(three) == ["DIGEST_INVALID"]
    one = await upload([data])
    assert one.status == 201


async def test_ghcr_ranged_patch_over_4mib_is_416() -> None:
    reg = make(profile="ghcr")
    post = await call(reg, "POST", "/v2/acme/app/blobs/uploads/")
    big = b"x" * (4 * 1024 * 1024 + 1)
    resp = await call(
        reg, "PATCH", location_path(post), big, {"Content-Range": f"0-{len(big) - 1}"}
    )
    assert resp.status == 416
    ok = await call(reg, "PATCH", location_path(post), big[:4096], {"Content-Range": "0-4095"})
    assert ok.status == 202


@pytest.mark.parametrize(
    ("profile", "source", "status"),
    [
        pytest.param("ghcr", "acme/base", 201, id="ghcr-same-namespace"),
        pytest.param("ghcr", "other/base", 202, id="ghcr-cross-namespace"),
        pytest.param("generic", "other/base", 201, id="generic-cross-namespace"),
        pytest.param("generic", "missing/repo", 202, id="generic-blob-absent"),
    ],
)
async def test_mount(profile: str, source: str, status: int) -> None:
    reg = make(profile=profile)
    await push_blob(reg, "acme/base", b"layer")
    await push_blob(reg, "other/base", b"layer")
    resp = await call(
        reg, "POST", f"/v2/acme/app/blobs/uploads/?mount={sha(b'layer')}&from={source}"
    )
    assert resp.status == status
    if status == 201:
        assert resp.header("Location") is not None and sha(b"layer") in (
            resp.header("Location") or ""
        )
        assert reg.store.has_blob("acme/app", sha(b"layer"))
    else:
        assert resp.header("Docker-Upload-UUID") in reg.store.uploads
        assert not reg.store.has_blob("acme/app", sha(b"layer"))


async def test_manifests_tags_and_referrers() -> None:
    reg = make(referrers_api=True)
    await push_blob(reg, "r", b"cfg")
    await push_blob(reg, "r", b"layer")
    body = image(b"cfg", [b"layer"])
    missing = await call(
        reg,
        "PUT",
        "/v2/r/manifests/v1",
        image(b"cfg", [b"no1", b"no2"]),
        {"Content-Type": OCI_MANIFEST},
    )
    assert missing.status == 400 and codes(missing) == ["MANIFEST_BLOB_UNKNOWN"] * 2
    put = await call(reg, "PUT", "/v2/r/manifests/v1", body, {"Content-Type": OCI_MANIFEST})
    assert put.status == 201 and put.header("Docker-Content-Digest") == sha(body)
    wrong = await call(
        reg, "PUT", f"/v2/r/manifests/{sha(b'zzz')}", body, {"Content-Type": OCI_MANIFEST}
    )
    assert wrong.status == 400 and codes(wrong) == ["DIGEST_INVALID"]
    got = await call(reg, "GET", "/v2/r/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert got.body == body and got.header("Content-Type") == OCI_MANIFEST
    # distribution 2.8: an OCI manifest by tag without OCI in Accept is a 404; by digest it is served.
    assert (await call(reg, "GET", "/v2/r/manifests/v1")).status == 404
    assert (await call(reg, "GET", f"/v2/r/manifests/{sha(body)}")).body == body
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha(body), "size": len(body)},
                {"mediaType": OCI_MANIFEST, "digest": sha(b"child"), "size": 5},
            ],
        }
    ).encode()
    resp = await call(reg, "PUT", "/v2/r/manifests/multi", index, {"Content-Type": OCI_INDEX})
    assert resp.status == 400 and json.loads(resp.body)["errors"][0]["detail"] == sha(b"child")
    subject = {"mediaType": OCI_MANIFEST, "digest": sha(body), "size": len(body)}
    sig = image(b"cfg", [b"layer"], artifactType="application/vnd.example.sig", subject=subject)
    resp = await call(
        reg, "PUT", f"/v2/r/manifests/{sha(sig)}", sig, {"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 201 and resp.header("OCI-Subject") == sha(body)
    listing = json.loads((await call(reg, "GET", f"/v2/r/referrers/{sha(body)}")).body)
    assert [m["digest"] for m in listing["manifests"]] == [sha(sig)]
    filtered = await call(reg, "GET", f"/v2/r/referrers/{sha(body)}?artifactType=other/type")
    assert json.loads(filtered.body)["manifests"] == []
    assert filtered.header("OCI-Filters-Applied") == "artifactType"
    for tag in ("b", "a", "c", "d"):
        await call(reg, "PUT", f"/v2/r/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})
    first = await call(reg, "GET", "/v2/r/tags/list?n=2")
    assert json.loads(first.body)["tags"] == ["a", "b"]
    assert first.header("Link") == '</v2/r/tags/list?last=b&n=2>; rel="next"'
    last = await call(reg, "GET", "/v2/r/tags/list?n=2&last=d")
    assert json.loads(last.body)["tags"] == ["v1"] and last.header("Link") is None
    # n=0 is no limit, as in distribution 2.8 (every tag), not an empty page or null
    for query, expected in (("n=0", ["a", "b", "c", "d", "v1"]), ("n=0&last=b", ["c", "d", "v1"])):
        zero = await call(reg, "GET", f"/v2/r/tags/list?{query}")
        assert json.loads(zero.body)["tags"] == expected and zero.header("Link") is None, query
    assert (await call(reg, "DELETE", "/v2/r/manifests/a")).status == 202
    assert (await call(reg, "DELETE", f"/v2/r/manifests/{sha(body)}")).status == 202
    # distribution 2.8 says null once every tag is gone (a Go nil slice).
    assert json.loads((await call(reg, "GET", "/v2/r/tags/list")).body)["tags"] is None
    unknown = await call(reg, "GET", "/v2/nope/tags/list")
    assert unknown.status == 404 and codes(unknown) == ["NAME_UNKNOWN"]


async def test_manifest_too_large_is_413() -> None:
    reg = make()
    resp = await call(
        reg,
        "PUT",
        "/v2/r/manifests/big",
        b"{" + b" " * (4 << 20) + b"}",
        {"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 413 and resp.close


async def test_ghcr_tags_pages_of_100_and_no_referrers() -> None:
    reg = make(profile="ghcr")
    await push_blob(reg, "acme/app", b"cfg")
    body = image(b"cfg", [])
    for i in range(150):
        await call(
            reg, "PUT", f"/v2/acme/app/manifests/t{i:03d}", body, {"Content-Type": OCI_MANIFEST}
        )
    first = await call(reg, "GET", "/v2/acme/app/tags/list")
    assert len(json.loads(first.body)["tags"]) == 100
    assert first.header("Link") == '</v2/acme/app/tags/list?last=t099&n=100>; rel="next"'
    zero = await call(reg, "GET", "/v2/acme/app/tags/list?n=0")  # the default page, not none
    assert json.loads(zero.body)["tags"] == json.loads(first.body)["tags"]
    assert zero.header("Link") == first.header("Link")
    referrers = await call(reg, "GET", f"/v2/acme/app/referrers/{sha(body)}")
    assert referrers.status == 404 and codes(referrers) == ["MANIFEST_UNKNOWN"]


async def test_rate_limit_exact_counts_with_ghcr_body() -> None:
    clock = Clock()
    reg = make(clock, profile="ghcr", rate_limit="20/1s")
    statuses = [(await call(reg, "GET", "/v2/")).status for _ in range(20)]
    assert statuses == [200] * 20
    clock.now += 0.5
    throttled = await call(reg, "GET", "/v2/")
    assert throttled.status == 429 and throttled.header("Retry-After") is None
    assert json.loads(throttled.body) == {
        "errors": [{"code": "TOOMANYREQUESTS", "message": "retry-after: 500ms, allowed: 20/second"}]
    }
    clock.now += 0.5  # the first 20 leave the window
    assert (await call(reg, "GET", "/v2/")).status == 200
    stats = reg.statistics()
    assert stats["throttled"] == 1
    assert stats["per_principal"]["10.0.0.9"] == {"requests": 22, "throttled": 1, "peak_window": 20}
    with_header = make(Clock(), profile="ghcr", rate_limit="1/1m", retry_after_header=True)
    await call(with_header, "GET", "/v2/")
    resp = await call(with_header, "GET", "/v2/")
    assert resp.status == 429 and resp.header("Retry-After") == "60"
    assert b"allowed: 1/minute" in resp.body


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_token_auth_flows() -> None:
    reg = make(
        auth="token",
        users={"alice": "pat-a", "bob": "pat-b"},
        public=["pub/*"],
        user_namespaces={"bob": ["team"]},
    )
    ping = await call(reg, "GET", "/v2/")
    assert ping.status == 401
    challenge = ping.header("WWW-Authenticate") or ""
    assert challenge.startswith('Bearer realm="http://127.0.0.1/token",service="127.0.0.1"')
    resp = await call(reg, "GET", "/v2/alice/app/tags/list")
    assert 'scope="repository:alice/app:pull"' in (resp.header("WWW-Authenticate") or "")

    async def token(scope: str, headers: dict[str, str] | None = None) -> Response:
        return await call(reg, "GET", f"/token?service=127.0.0.1&scope={scope}", headers=headers)

    bad = await token("repository:alice/app:pull", basic("alice", "wrong"))
    assert bad.status == 401
    anon_private = await token("repository:alice/app:pull")
    assert anon_private.status == 401
    anon_public = await token("repository:pub/x:pull")
    assert anon_public.status == 200 and list(json.loads(anon_public.body)) == ["token"]
    anon = {"Authorization": "Bearer " + json.loads(anon_public.body)["token"]}
    assert (
        await call(reg, "GET", "/v2/pub/x/tags/list", headers=anon)
    ).status == 404  # allowed, empty
    denied = await call(reg, "POST", "/v2/pub/x/blobs/uploads/", headers=anon)
    assert denied.status == 403 and codes(denied) == ["DENIED"]
    other_repo = await call(reg, "GET", "/v2/pub/y/tags/list", headers=anon)
    assert other_repo.status == 401  # token is for pub/x only: challenge again

    granted = await token("repository:alice/app:pull,push", basic("alice", "pat-a"))
    alice = {"Authorization": "Bearer " + json.loads(granted.body)["token"]}
    assert (await call(reg, "POST", "/v2/alice/app/blobs/uploads/", headers=alice)).status == 202
    # bob may push to team/* but not alice/*: his token for alice/app grants nothing -> 403.
    bob_tok = await token("repository:alice/app:pull,push", basic("bob", "pat-b"))
    assert (
        await call(
            reg,
            "POST",
            "/v2/alice/app/blobs/uploads/",
            headers={"Authorization": "Bearer " + json.loads(bob_tok.body)["token"]},
        )
    ).status == 403
    pat = {"Authorization": "Bearer pat-b"}
    assert (await call(reg, "POST", "/v2/team/x/blobs/uploads/", headers=pat)).status == 202
    assert (await call(reg, "POST", "/v2/alice/x/blobs/uploads/", headers=pat)).status == 403
    assert (await call(reg, "GET", "/v2/", headers=pat)).status == 200
    stats = reg.statistics()
    assert stats["per_principal"]["alice"]["requests"] == 2  # its token request and its POST
    assert stats["by_kind"]["token"] == 5


@pytest.mark.parametrize("value", [pytest.param("Basic !!!, \x80", id="non-ascii"),
                                   pytest.param("Basic " + base64.b64encode(b"\xff:x").decode(), id="not-utf8")])
async def test_undecodable_basic_credentials_are_refused_not_a_500(value: str) -> None:
    assert (await call(make(profile="ghcr"), "GET", "/v2/", headers={"Authorization": value})).status == 200
    reg = make(profile="ghcr", auth="token", users={"alice": "pat-a"})
    assert (await call(reg, "GET", "/token?scope=repository:alice/app:pull",
                       headers={"Authorization": value})).status == 401


async def test_mock_endpoints_are_not_counted() -> None:
    reg = make(profile="ghcr", rate_limit="1/1m")
    await call(reg, "GET", "/v2/")
    for _ in range(3):
        assert (await call(reg, "GET", "/_mock/stats")).status == 200
    stats = json.loads((await call(reg, "GET", "/_mock/stats")).body)
    assert stats["requests_total"] == 1 and stats["by_kind"]["ping"] == 1
    assert (await call(reg, "POST", "/_mock/reset")).status == 200
    assert reg.statistics()["requests_total"] == 0


async def test_bad_names_and_digests() -> None:
    reg = make()
    assert (await call(reg, "GET", "/v2/Upper/tags/list")).status == 404
    assert codes(await call(reg, "GET", "/v2/a//b/tags/list")) == ["NAME_INVALID"]
    assert (await call(reg, "GET", "/v2/a/blobs/sha256:abc")).status == 400
    assert (await call(reg, "GET", "/v2/a/blobs/latest")).status == 404
    assert (await call(reg, "GET", "/v2/a/manifests/-bad")).status == 404
    assert (await call(reg, "PATCH", "/v2/a/blobs/uploads/nope", b"x")).status == 404
    assert (await call(reg, "GET", "/nothing")).status == 404


async def test_abandoned_uploads_are_purged() -> None:
    clock = Clock()
    reg = make(clock)
    for _ in range(3):
        await call(reg, "POST", "/v2/r/blobs/uploads/")
    clock.now += 601
    fresh = await call(reg, "POST", "/v2/r/blobs/uploads/")
    assert reg.store.purge_uploads(clock()) == 3
    assert list(reg.store.uploads) == [fresh.header("Docker-Upload-UUID")]
    assert reg.statistics()["uploads_abandoned"] == 4  # 3 purged + 1 still open


async def test_catalog_pagination_and_auth() -> None:
    reg = make(auth="token", users={"alice": "pat-a"})
    for repo in ("alice/c", "alice/a", "alice/b"):
        await push_blob(reg, repo, b"x", {"Authorization": "Bearer pat-a"})
    anonymous = await call(reg, "GET", "/v2/_catalog")
    assert anonymous.status == 401
    assert 'scope="registry:catalog:*"' in (anonymous.header("WWW-Authenticate") or "")
    first = await call(reg, "GET", "/v2/_catalog?n=2", headers={"Authorization": "Bearer pat-a"})
    assert json.loads(first.body) == {"repositories": ["alice/a", "alice/b"]}
    assert first.header("Link") == '</v2/_catalog?last=alice/b&n=2>; rel="next"'
    rest = await call(
        reg, "GET", "/v2/_catalog?n=2&last=alice/b", headers={"Authorization": "Bearer pat-a"}
    )
    assert json.loads(rest.body) == {"repositories": ["alice/c"]} and rest.header("Link") is None
    token = await call(
        reg, "GET", "/token?scope=registry:catalog:*", headers=basic("alice", "pat-a")
    )
    bearer = {"Authorization": "Bearer " + json.loads(token.body)["token"]}
    assert (await call(reg, "GET", "/v2/_catalog", headers=bearer)).status == 200


async def test_blob_delete_and_upload_cancel() -> None:
    reg = make()
    await push_blob(reg, "r", b"blob")
    assert (await call(reg, "DELETE", f"/v2/r/blobs/{sha(b'blob')}")).status == 202
    assert (await call(reg, "HEAD", f"/v2/r/blobs/{sha(b'blob')}")).status == 404
    assert (await call(reg, "DELETE", f"/v2/r/blobs/{sha(b'blob')}")).status == 404
    post = await call(reg, "POST", "/v2/r/blobs/uploads/")
    cancel = await call(reg, "DELETE", location_path(post))
    assert cancel.status == 204 and cancel.header("Docker-Upload-UUID") == post.header(
        "Docker-Upload-UUID"
    )
    assert (await call(reg, "GET", location_path(post))).status == 404
    assert reg.statistics()["uploads_abandoned"] == 1


@pytest.mark.parametrize(("profile", "header"), [("generic", True), ("ghcr", False)])
async def test_oci_subject_only_with_referrers_api(profile: str, header: bool) -> None:
    reg = make(profile=profile)
    await push_blob(reg, "acme/r", b"cfg")
    subject = {"mediaType": OCI_MANIFEST, "digest": sha(b"s"), "size": 1}
    sig = image(b"cfg", [], subject=subject)
    resp = await call(
        reg, "PUT", f"/v2/acme/r/manifests/{sha(sig)}", sig, {"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 201
    assert (resp.header("OCI-Subject") == sha(b"s")) is header


async def test_storage_urls_are_signed_and_expire() -> None:
    reg = make(profile="ghcr")
    reg.storage_url = "http://127.0.0.2:1"
    await push_blob(reg, "acme/r", b"content")
    redirect = await call(reg, "GET", f"/v2/acme/r/blobs/{sha(b'content')}")
    assert redirect.status == 307
    target = (redirect.header("Location") or "").removeprefix("http://127.0.0.2:1")

    async def fetch(path: str, headers: dict[str, str] | None = None) -> Response:
        req = Request("GET", path, {k.lower(): v for k, v in (headers or {}).items()}, "10.0.0.9", BytesBody())
        resp = await reg.handle_storage(req)
        reg.record(req, resp, resp.content_length, 0.0)
        return resp

    ok = await fetch(target)
    assert ok.status == 200 and ok.source is not None and ok.length == len(b"content")
    assert (await fetch(target.replace("repo=acme%2Fr", "repo=acme%2Fother"))).status == 403
    expired = 1_000_000
    stale = f"/blobs/{sha(b'content')}?repo=acme%2Fr&expires={expired}&sig={reg.storage.signature('acme/r', sha(b'content'), expired)}"
    assert (await fetch(stale)).status == 403
    assert (await fetch(target, {"Authorization": "Bearer secret"})).status == 200
    stats = reg.statistics()
    assert stats["auth_leaks"] == 1 and stats["by_kind"]["storage_get"] == 4
    assert stats["per_principal"]["10.0.0.9"]["requests"] == 2  # push + redirect; storage is not metered


async def test_signed_url_expiry_follows_the_injected_wall_clock(mock_clock: trio.testing.MockClock) -> None:
    """Expiry reads `wall_clock`, so a MockClock drives it: valid for `redirect_ttl`, then 403."""
    epoch = 1_700_000_000.0
    reg = build_registry(MockOptions(profile="ghcr"), wall_clock=lambda: epoch + trio.current_time())
    reg.storage_url = "http://127.0.0.2:1"
    await push_blob(reg, "acme/r", b"content")
    redirect = await call(reg, "GET", f"/v2/acme/r/blobs/{sha(b'content')}")
    target = (redirect.header("Location") or "").removeprefix("http://127.0.0.2:1")
    assert f"expires={int(epoch + trio.current_time()) + 300}" in target  # GHCR's URLs last 5 minutes

    async def fetch() -> Response:
        return await reg.handle_storage(Request("GET", target, {}, "10.0.0.9", BytesBody()))

    mock_clock.jump(299)
    assert (await fetch()).status == 200
    mock_clock.jump(2)
    expired = await fetch()
    assert expired.status == 403
    assert json.loads(expired.body)["errors"][0]["message"] == "request has expired"


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 20) - 1, 1 << 20, (3 << 20) + 17])
def test_memory_blocks_hold_content_once(size: int) -> None:
    from mockregistry.blobbytes import BLOCK_SIZE, Blocks

    data = bytes(i % 251 for i in range(size))
    blocks = Blocks()
    for start in range(0, size, 70_001):
        blocks.append(data[start : start + 70_001])
    blocks.seal()
    assert blocks.length == size and bytes(blocks) == data
    assert sum(len(b) for b in blocks.blocks) == size  # no slack kept, no second copy
    assert all(len(b) == BLOCK_SIZE for b in blocks.blocks[:-1])
    assert bytes(blocks.read(BLOCK_SIZE - 5, 100)) == data[BLOCK_SIZE - 5 : BLOCK_SIZE]
