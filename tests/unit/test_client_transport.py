"""RegistryClient behaviours pinned against a scripted registry (tests/scripted.py, injected
at the Transport interface, so bodies take the production path; no sockets):
redirect credential stripping, Location followed verbatim, token refresh, retries, throttles,
manifest verification and size limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import trio
import trio.testing

from ocync.errors import (
    IntegrityError,
    ManifestError,
    NotFound,
    ReferenceError_,
    RegistryError,
    TransportError,
    Unauthorized,
)
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor
from ocync.registry.auth import AuthSettings, Credential
from ocync.registry.blobs import copy_blob_to, upload_blob
from ocync.registry.client import ClientSettings, RegistryClient, digest_query
from ocync.registry.pool import ClientPool
from ocync.registry.transport import WIRE_BYTES_THRESHOLD, Transports
from tests.scripted import ScriptedTransport

Handler = Callable[[httpx.Request], httpx.Response]
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()


def client(handler: Handler, registry: str = "reg.test", **settings: object) -> RegistryClient:
    options = ClientSettings(**settings)  # type: ignore[arg-type]
    return RegistryClient(registry, options, transport=ScriptedTransport(handler, timeouts=(options.connect_timeout, options.read_timeout)), seed=1)


async def body_chunks(data: bytes, size: int = 7):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_scheme_by_host() -> None:
    assert client(lambda r: httpx.Response(200)).base_url == "https://reg.test"
    assert client(lambda r: httpx.Response(200), "localhost:5000").base_url == "http://localhost:5000"
    assert client(lambda r: httpx.Response(200), "127.0.0.1:5000").base_url == "http://127.0.0.1:5000"
    assert client(lambda r: httpx.Response(200), "docker.io").base_url == "https://registry-1.docker.io"
    assert client(lambda r: httpx.Response(200), "reg.test", insecure=True).base_url == "http://reg.test"


async def test_bearer_flow_and_redirect_strips_credentials() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        seen.append((str(request.url), auth))
        if request.url.host == "auth.test":
            assert auth is not None and auth.startswith("Basic ")
            return httpx.Response(200, json={"token": "tok-1", "expires_in": 300})
        if request.url.host == "storage.test":
            return httpx.Response(200, content=b"blobdata")
        if auth != "Bearer tok-1":
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test"'},
            )
        return httpx.Response(307, headers={"Location": "https://storage.test/b?sig=SECRET"})

    data = b"blobdata"
    async with client(handler, auth=AuthSettings(kind="basic", username="u", password="pw")) as c:
        async with c.open_blob("o/a", Digest.of(data)) as stream:
            got = b"".join([chunk async for chunk in stream.chunks()])
    assert got == data
    storage = [auth for url, auth in seen if "storage.test" in url]
    assert storage == [None], "credentials must not follow a redirect to another host"
    assert any("scope=repository%3Ao%2Fa%3Apull" in url for url, _ in seen if "auth.test" in url)
    stats = c.statistics()
    assert stats.by_kind_status["blob_get"] == {"401": 1, "307": 1}
    assert stats.by_kind["storage_get"] == 1 and stats.tokens_fetched == 1
    assert stats.bytes_in_by_kind["storage_get"] == len(data)
    assert stats.by_method == {"GET": 4}  # 401, token, 307, storage
    merged = stats.merge([stats, stats]).to_dict()
    assert merged["requests"] == 8 and merged["by_kind"]["storage_get"] == 2


async def test_location_followed_verbatim_with_query() -> None:
    requests: list[tuple[str, str]] = []
    data = b"x" * 100
    digest = Digest.of(data)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append((request.method, str(request.url)))
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "../weird/upload-path;x=1?_state=abc%2Fdef&z=1"})
        if request.method == "PUT":
            assert request.read() == data
            return httpx.Response(201)
        return httpx.Response(500)

    async with client(handler) as c:
        await upload_blob(c, "o/a", Descriptor(mt.OCI_LAYER, digest, len(data)), body_chunks(data))
    method, put_url = requests[-1]
    assert method == "PUT"
    assert put_url == f"https://reg.test/v2/o/a/blobs/weird/upload-path;x=1?_state=abc%2Fdef&z=1&digest={digest}"
    assert digest_query("https://h/u?", digest) == f"https://h/u?digest={digest}"


async def test_single_patch_strategy_is_post_patch_put() -> None:
    methods: list[str] = []
    data = b"y" * 1000

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/o/a/blobs/upload/s1"})
        if request.method == "PATCH":
            assert request.headers["content-length"] == str(len(data))
            assert request.read() == data
            return httpx.Response(202, headers={"Location": "https://reg.test/v2/o/a/blobs/upload/s1?after=patch"})
        assert request.url.params["after"] == "patch" and request.read() == b""
        return httpx.Response(201)

    async with client(handler, profile="ghcr") as c:
        await upload_blob(c, "o/a", Descriptor(mt.OCI_LAYER, Digest.of(data), len(data)), body_chunks(data, 100))
    assert methods == ["POST", "PATCH", "PUT"]


@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_digest_mismatch_never_commits(profile: str) -> None:
    methods: list[str] = []
    data = b"z" * 50

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/o/a/blobs/uploads/s"})
        if request.method == "DELETE":
            return httpx.Response(204)
        request.read()
        return httpx.Response(201 if request.method == "PUT" else 202, headers={"Location": "/v2/o/a/blobs/uploads/s"})

    wrong = Descriptor(mt.OCI_LAYER, Digest.of(b"other"), len(data))
    async with client(handler, profile=profile) as c:
        with pytest.raises(IntegrityError, match=f"blob {wrong.digest}.*digest mismatch"):
            await upload_blob(c, "o/a", wrong, body_chunks(data))
    # the committing request was never completed; the session was deleted
    assert methods[0] == "POST" and methods[-1] == "DELETE"
    assert "PUT" not in methods[1:-1] or profile == "generic"
    assert c.statistics().by_kind_status.get("upload_put", {}).get("201") is None


async def test_static_token_and_token_refresh_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers.get("authorization") == "Bearer static-tok"
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t"'})

    async with client(handler, auth=AuthSettings(kind="static_token", token="static-tok")) as c:
        with pytest.raises(Unauthorized) as info:
            await c.head_blob("o/a", Digest.of(b""))
    assert "static-tok" not in str(info.value)
    assert info.value.exit_code == 4

    tokens = iter(["t1", "t2"])
    calls: list[str | None] = []

    def refreshing(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"token": next(tokens)})
        auth = request.headers.get("authorization")
        calls.append(auth)
        if auth == "Bearer t2":
            return httpx.Response(200, headers={"Content-Length": "3"})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t",service="s"'})

    async with client(refreshing) as c:
        # first 401 teaches the challenge, t1 is rejected, one refresh gives t2
        assert await c.head_blob("o/a", Digest.of(b"")) == 3
    assert calls == [None, "Bearer t1", "Bearer t2"]


async def test_unauthorized_after_refresh() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "bad creds"}]})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t"'})

    async with client(handler, auth=AuthSettings(kind="basic", username="u", password="hunter2")) as c:
        with pytest.raises(Unauthorized, match="authentication to reg.test failed") as info:
            await c.get_manifest("o/a", "v1")
    assert "hunter2" not in str(info.value)


async def test_retries_5xx_and_connection_errors_then_gives_up(autojump_clock: trio.testing.MockClock) -> None:
    attempts = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise httpx.ConnectError("refused")
        if attempts["n"] == 2:
            return httpx.Response(503)
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": mt.OCI_INDEX})

    async with client(handler) as c:
        m = await c.get_manifest("o/a", "v1")
    assert m.raw == MANIFEST and attempts["n"] == 3
    assert c.statistics().retries == 2

    async with client(lambda r: httpx.Response(502), attempts=2) as c:
        with pytest.raises(RegistryError, match="HTTP 502"):
            await c.get_manifest("o/a", "v1")
    assert c.statistics().by_kind["manifest_get"] == 2

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    async with client(reset, attempts=2) as c:
        with pytest.raises(TransportError, match=r"reg.test: the connection broke \(connection reset\) \(HEAD /v2/o/a/manifests/v1\)"):
            await c.head_manifest("o/a", "v1")


async def test_throttle_waits_and_retries_without_failure(autojump_clock: trio.testing.MockClock) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "retry-after: 10ms, allowed: 2000/minute"}]}
            return httpx.Response(429, json=body)
        return httpx.Response(200, json={"name": "o/a", "tags": ["a"]})

    async with client(handler, profile="ghcr") as c:
        assert await c.list_tags("o/a") == ["a"]
        stats = c.statistics()
        controller = c.controller.statistics().to_dict()
    assert stats.throttled == 2 and stats.retries == 0
    assert controller["throttles"] == 2


async def test_manifest_verification() -> None:
    good = Digest.of(MANIFEST)

    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST + b" ", headers={"Content-Type": mt.OCI_INDEX})

    async with client(lying, attempts=1) as c:
        with pytest.raises(IntegrityError, match=f"manifest reg.test/o/a@{good}: digest mismatch"):
            await c.get_manifest("o/a", str(good))

    def wrong_header(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=MANIFEST, headers={"Content-Type": mt.OCI_INDEX, "Docker-Content-Digest": str(Digest.of(b"x"))}
        )

    async with client(wrong_header, attempts=1) as c:
        with pytest.raises(IntegrityError, match="Docker-Content-Digest"):
            await c.get_manifest("o/a", "v1")

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * (5 * 1024 * 1024) + b"}")

    async with client(huge) as c:
        with pytest.raises(ManifestError, match="exceeds"):
            await c.get_manifest("o/a", "v1")


async def test_put_manifest_checks_returned_digest_and_404s() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            assert request.headers["content-type"] == mt.OCI_INDEX
            return httpx.Response(201, headers={"Docker-Content-Digest": str(Digest.of(request.read()))})
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})

    async with client(handler) as c:
        assert await c.put_manifest("o/a", "v1", MANIFEST, mt.OCI_INDEX) == Digest.of(MANIFEST)
        assert await c.head_manifest("o/a", "v2") is None
        with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
            await c.get_manifest("o/a", "v2")


async def test_tags_pagination_and_referrers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/tags/list"):
            last = request.url.params.get("last")
            if last is None:
                return httpx.Response(200, json={"tags": ["a", "b"]}, headers={"Link": '</v2/o/a/tags/list?n=2&last=b>; rel="next"'})
            return httpx.Response(200, json={"tags": ["c"]})
        if "/referrers/" in path:
            index = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_INDEX,
                "manifests": [
                    {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"s")), "size": 1, "artifactType": "sig"},
                    {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"t")), "size": 1, "artifactType": "sbom"},
                ],
            }
            return httpx.Response(200, json=index, headers={"Content-Type": mt.OCI_INDEX})
        return httpx.Response(404)

    async with client(handler) as c:
        assert await c.list_tags("o/a") == ["a", "b", "c"]
        refs = await c.referrers("o/a", Digest.of(b"m"), artifact_type="sbom")
        assert refs is not None and [r.artifact_type for r in refs] == ["sbom"]
    async with client(handler, profile="ghcr") as c:
        assert await c.referrers("o/a", Digest.of(b"m")) is None
        assert "referrers" not in c.statistics().by_kind  # known unsupported: no request
    async with client(lambda r: httpx.Response(404), attempts=1) as c:
        assert await c.referrers("o/a", Digest.of(b"m")) is None


async def test_token_expired_mid_transfer_restarts_copy(autojump_clock: trio.testing.MockClock) -> None:
    data = b"q" * 300
    digest = Digest.of(data)
    state = {"put_401": True, "tokens": 0}

    def source(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=data)

    def target(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            state["tokens"] += 1
            return httpx.Response(200, json={"token": f"t{state['tokens']}"})
        if request.headers.get("authorization") is None:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t"'})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/o/a/blobs/uploads/s"})
        if request.method == "PUT":
            request.read()
            if state["put_401"]:
                state["put_401"] = False
                return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t"'})
            return httpx.Response(201)
        return httpx.Response(204)

    async with client(source, "src.test") as s, client(target, "dst.test") as d:
        await copy_blob_to(s, "o/a", Descriptor(mt.OCI_LAYER, digest, len(data)), d, "o/a")
    assert state["tokens"] == 2
    assert s.statistics().by_kind["blob_get"] == 2  # a fresh source GET for the restart
    assert d.statistics().by_kind_status["upload_put"] == {"401": 1, "201": 1}


async def test_pool_shares_controllers_per_principal() -> None:
    async with ClientPool() as pool:
        basic = ClientSettings(auth=AuthSettings(kind="basic", username="u", password="p"))
        a = await pool.client("127.0.0.1:1", basic)
        b = await pool.client("127.0.0.1:1", ClientSettings(auth=AuthSettings(kind="basic", username="u", password="p"), attempts=3))
        other = await pool.client("127.0.0.1:1", ClientSettings(auth=AuthSettings(kind="anonymous")))
        assert a is not b and a.controller is b.controller
        assert other.controller is not a.controller
        assert a.principal == "127.0.0.1:1|user:u"
        assert await pool.client("127.0.0.1:1", basic) is a
        assert len(pool.controllers) == 2


async def test_throttled_streamed_upload_restarts_without_counting_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    data = b"w" * 200
    state = {"puts": 0}

    def source(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=data)

    def target(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/o/a/blobs/uploads/s"})
        if request.method == "PUT":
            request.read()
            state["puts"] += 1
            if state["puts"] == 1:
                body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "retry-after: 50ms, allowed: 2000/minute"}]}
                return httpx.Response(429, json=body)
            return httpx.Response(201)
        return httpx.Response(204)

    async with client(source, "src.test") as s, client(target, "dst.test", attempts=1) as d:
        await copy_blob_to(s, "o/a", Descriptor(mt.OCI_LAYER, Digest.of(data), len(data)), d, "o/a")
        assert d.controller.statistics().to_dict()["throttles"] == 1
    assert state["puts"] == 2 and d.statistics().throttled == 1


async def test_long_throttle_wait_is_said_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 3:
            return httpx.Response(429, headers={"Retry-After": "30"})
        return httpx.Response(200, json={"name": "o/a", "tags": ["a"]})

    with caplog.at_level("INFO", logger="ocync.registry.client"):
        async with client(handler) as c:
            assert await c.list_tags("o/a") == ["a"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["reg.test is throttling us (429 Too Many Requests); waiting as told (retry after 30 s)"]
    assert sum("throttled a request" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        pytest.param(httpx.Response(200, content=b"<html>hi</html>", headers={"Content-Type": "text/html"}),
                     ManifestError, "manifest reg.test/o/a:v1: the registry answered text/html, not a manifest",
                     id="html-page"),
        pytest.param(httpx.Response(200, content=b"{", headers={"Content-Type": mt.OCI_INDEX}),
                     ManifestError, "manifest reg.test/o/a:v1: not valid JSON", id="broken-json"),
        pytest.param(httpx.Response(200, content=MANIFEST, headers={"Content-Type": mt.OCI_INDEX,
                                                                    "Docker-Content-Digest": "sha256:nope"}),
                     RegistryError, "manifest reg.test/o/a:v1: the registry sent an invalid Docker-Content-Digest",
                     id="bad-digest-header"),
        pytest.param(httpx.Response(404), NotFound, "manifest reg.test/o/a:v1: HTTP 404 (not found)", id="bare-404"),
        pytest.param(httpx.Response(403), Unauthorized, "manifest reg.test/o/a:v1: HTTP 403 (access denied)",
                     id="bare-403"),
    ],
)
async def test_odd_manifest_answers_name_the_manifest(
    response: httpx.Response, error: type[Exception], message: str
) -> None:
    async with client(lambda r: response, attempts=1) as c:
        with pytest.raises(error) as info:
            await c.get_manifest("o/a", "v1")
    assert str(info.value).startswith(message), str(info.value)
    assert not isinstance(info.value, ReferenceError_)  # the registry's fault is not exit 3


async def test_tag_list_that_is_not_json_says_so() -> None:
    page = httpx.Response(200, content=b"<html>login</html>", headers={"Content-Type": "text/html; charset=utf-8"})
    async with client(lambda r: page) as c:
        with pytest.raises(RegistryError, match=r"^listing tags of reg\.test/o/a: the answer is not JSON "
                                                r"\(text/html\) \(is this a registry\?\)$"):
            await c.list_tags("o/a")


async def test_a_timeout_is_retried_once_not_attempts_times(autojump_clock: trio.testing.MockClock) -> None:
    calls = {"n": 0}

    def hang(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        raise httpx.ReadTimeout("timed out", request=request)

    async with client(hang, attempts=5, read_timeout=7.0) as c:
        with pytest.raises(TransportError, match=r"^reg\.test: no answer within 7 s \(GET /v2/o/a/tags/list\)$"):
            await c.list_tags("o/a")
    assert calls["n"] == 2


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("http://[::1/upload", id="broken-ipv6"),
        pytest.param("http://reg.test:99999/upload", id="port-out-of-range"),
        pytest.param("ftp://reg.test/upload", id="not-http"),
        pytest.param("\x00", id="nul"),
    ],
)
async def test_garbage_location_is_a_registry_error(location: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, headers={"Location": location})

    async with client(handler) as c:
        with pytest.raises(RegistryError, match="the registry sent a"):
            await c.start_upload("o/a")


async def test_nesting_bombs_from_the_registry_are_plain_errors(autojump_clock: trio.testing.MockClock) -> None:
    bomb = b"[" * 30000
    calls = {"n": 0}

    def throttled_then_ok(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, content=bomb, headers={"Content-Type": "application/json"})
        return httpx.Response(200, json={"name": "o/a", "tags": ["a"]})

    async with client(throttled_then_ok) as c:
        assert await c.list_tags("o/a") == ["a"]
        assert c.statistics().throttled == 1

    def bad_token(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, content=bomb)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/token"'})

    async with client(bad_token) as c:
        with pytest.raises(Unauthorized, match=r"^authentication to reg\.test failed \(anonymous\): token endpoint "
                                               r"answered something that is not JSON \(https://auth\.test/token\)$"):
            await c.list_tags("o/a")

    async with client(lambda r: httpx.Response(200, content=bomb, headers={"Content-Type": "application/json"})) as c:
        with pytest.raises(RegistryError, match="the answer is not JSON"):
            await c.list_tags("o/a")


async def test_endless_link_pagination_stops(autojump_clock: trio.testing.MockClock) -> None:
    """Broken registries whose pages always point to a fresh next page: empty pages, or the
    same tags again and again."""
    for repeat in ([], ["a", "b"]):
        calls = {"n": 0}

        def handler(request: httpx.Request, repeat: list[str] = repeat, calls: dict[str, int] = calls) -> httpx.Response:
            calls["n"] += 1
            tags = ["a", "b"] if calls["n"] == 1 else repeat
            link = f'</v2/o/a/tags/list?n=2&last=x{calls["n"]}>; rel="next"'
            return httpx.Response(200, json={"name": "o/a", "tags": tags}, headers={"Link": link})

        async with client(handler) as c:
            assert await c.list_tags("o/a") == ["a", "b"]
        assert calls["n"] == 2


async def _chunks() -> AsyncIterator[bytes]:
    yield b"x"


@pytest.mark.parametrize(
    ("body", "stream", "plane"),
    [
        pytest.param(None, False, "control", id="a-get"),
        pytest.param(b"{}", False, "control", id="a-small-manifest-put"),
        pytest.param(None, True, "data", id="a-blob-get"),
        pytest.param("chunks", False, "data", id="a-streamed-upload"),
        pytest.param(b"x" * (WIRE_BYTES_THRESHOLD + 1), False, "data", id="a-big-byte-body"),
    ],
)
def test_the_plane_is_chosen_in_one_place(body: object, stream: bool, plane: str) -> None:
    control, data = ScriptedTransport(lambda r: httpx.Response(200)), ScriptedTransport(lambda r: httpx.Response(200))
    transports = Transports(control, data)
    sent = _chunks() if body == "chunks" else body
    chosen = transports.choose(sent, stream=stream)  # type: ignore[arg-type]
    assert chosen is (data if plane == "data" else control)


async def test_an_injected_transport_carries_both_planes() -> None:
    scripted = ScriptedTransport(lambda r: httpx.Response(200, content=b"blob"))
    async with RegistryClient("reg.test", transport=scripted, seed=1) as c:
        async with c.open_blob("o/a", Digest.of(b"blob")) as stream:
            assert b"".join([chunk async for chunk in stream.chunks()]) == b"blob"
    assert scripted.requests == 1


def test_a_given_credential_names_the_principal_before_entering() -> None:
    given = Credential("basic", username="u", secret="p", source="test")
    c = RegistryClient("reg.test", credential=given, transport=ScriptedTransport(lambda r: httpx.Response(200)))
    assert c.credential is given and c.principal == "reg.test|user:u"
