"""Request -> response handlers for the OCI Distribution API (spec 1.1), the token and storage hosts.

The handlers see a parsed request whose body is an async chunk iterator and answer a `Response`
whose body is bytes or a slice of stored content; `server.py` moves the bytes. Status codes and
headers follow the CNCF distribution registry 2.8 where the spec is silent (see DIFFERENCES.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol
from urllib.parse import parse_qs, quote, urlsplit

import trio

from .auth import Authenticator, namespace_of
from .quirks import BodyFault, FaultInjector, Profile, go_duration
from .ratelimit import SlidingWindowLimiter
from .stats import Stats
from .store import BlobSource, ManifestRecord, Store, Upload, parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES

JSON_TYPE = "application/json; charset=utf-8"
API_VERSION = ("Docker-Distribution-Api-Version", "registry/2.0")

# OCI Distribution Spec 1.1, "Pulling manifests": repository names and tags.
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# What distribution's router accepts as a digest before parsing it (go-digest's DigestRegexp);
# anything else is a router miss (404).
DIGEST_SHAPE_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
NAME_MAX = 255  # distribution's reference.NameTotalLengthMax

# distribution's messages for the standard codes (registry/api/errcode and api/v2/errors.go).
MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "TAG_INVALID": "manifest tag did not match URI",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "The operation is unsupported.",
    "TOOMANYREQUESTS": "too many requests",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "UNKNOWN": "unknown error",
}


class Body(Protocol):
    """A request body, read once as chunks."""

    content_length: int | None
    bytes_read: int

    def chunks(self) -> AsyncIterator[bytes | bytearray]: ...


class BytesBody:
    """A body already in memory (unit tests, and the server's empty bodies)."""

    def __init__(self, data: bytes = b"", chunk: int = 1 << 20) -> None:
        self._data = data
        self._chunk = chunk
        self.content_length: int | None = len(data)
        self.bytes_read = 0

    def chunks(self) -> AsyncIterator[bytes | bytearray]:
        return self

    def __aiter__(self) -> BytesBody:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.bytes_read >= len(self._data):
            raise StopAsyncIteration
        piece = self._data[self.bytes_read : self.bytes_read + self._chunk]
        self.bytes_read += len(piece)
        return piece


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    client: str
    body: Body = field(default_factory=BytesBody)
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        split = urlsplit(self.target)
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # A slice of stored content to stream instead of `body`.
    source: BlobSource | None = None
    offset: int = 0
    length: int = 0
    fault: BodyFault | None = None
    close: bool = False
    abort: bool = False  # drop the connection without answering (an injected reset)
    # Bookkeeping for stats and the access log.
    kind: str = "other"
    principal: str = ""
    counted: bool = True

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def content_length(self) -> int:
        # HEAD answers advertise the length of a body they do not send.
        return self.length if self.source is not None or self.length else len(self.body)


def error_body(*errors: tuple[str, str, object]) -> bytes:
    items = []
    for code, message, detail in errors:
        item: dict[str, object] = {"code": code, "message": message}
        if detail is not None:
            item["detail"] = detail
        items.append(item)
    return json.dumps({"errors": items}, separators=(",", ":")).encode() + b"\n"


def error(status: int, code: str, detail: object = None, *, message: str | None = None,
          headers: list[tuple[str, str]] | None = None, close: bool = False) -> Response:
    body = error_body((code, message or MESSAGES.get(code, code.lower()), detail))
    return Response(status, [("Content-Type", JSON_TYPE), *(headers or [])], body, close=close)


def json_response(data: object, status: int = 200, content_type: str = JSON_TYPE,
                  headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return Response(status, [("Content-Type", content_type), *(headers or [])], body)


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_RE.fullmatch(name) is not None


_UPLOAD_KINDS = {"PATCH": "upload_patch", "PUT": "upload_put", "GET": "upload_get",
                 "HEAD": "upload_get", "DELETE": "upload_delete"}
_BLOB_KINDS = {"HEAD": "blob_head", "GET": "blob_get"}
_MANIFEST_KINDS = {"HEAD": "manifest_head", "GET": "manifest_get", "PUT": "manifest_put",
                   "DELETE": "manifest_delete"}


def classify(method: str, path: str, query: Mapping[str, list[str]]) -> tuple[str, str, dict[str, str]]:
    """(kind, route, params) for a request; kinds are the common brief's vocabulary.

    String splitting rather than a list of regexes: this runs for every request.
    """
    if path in ("/v2/", "/v2"):
        return "ping", "ping", {}
    if path == "/token":
        return "token", "token", {}
    if path == "/v2/_catalog":
        return "catalog", "catalog", {}
    if not path.startswith("/v2/"):
        return "other", "", {}
    head, _, last = path[4:].rpartition("/")
    if not head or not last and not head.endswith(("/blobs/uploads", "/blobs/upload")):
        return "other", "", {}
    name, _, section = head.rpartition("/")
    if section in ("uploads", "upload"):
        name, _, blobs = name.rpartition("/")
        if blobs != "blobs" or not name:
            return "other", "", {}
        if method == "POST" and not last:
            kind = "mount" if "mount" in query else "upload_post"
        else:
            kind = _UPLOAD_KINDS.get(method, "other")
        return kind, "upload", {"name": name, "id": last}
    if not name:
        return "other", "", {}
    if section == "blobs" and last in ("uploads", "upload") and method == "POST":
        # `/blobs/uploads` without the trailing slash (distribution redirects it; we just serve it).
        return ("mount" if "mount" in query else "upload_post"), "upload", {"name": name, "id": ""}
    if section == "blobs":
        return _BLOB_KINDS.get(method, "other"), "blob", {"name": name, "digest": last}
    if section == "manifests":
        return _MANIFEST_KINDS.get(method, "other"), "manifest", {"name": name, "ref": last}
    if section == "tags" and last == "list":
        return "tags_list", "tags", {"name": name}
    if section == "referrers":
        return "referrers", "referrers", {"name": name, "digest": last}
    return "other", "", {}


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """What PUT learned from a manifest body: its record and the digests it needs present."""

    record: ManifestRecord
    blobs: tuple[str, ...]
    children: tuple[str, ...]


def check_manifest(body: bytes, content_type: str | None) -> ManifestCheck | Response:
    """Validate a manifest body (OCI image spec; distribution's schema2/OCI handlers)."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # Go's decoder also refuses deep nesting (depth 10000)
        return error(400, "MANIFEST_INVALID", "manifest is not valid JSON")
    if not isinstance(doc, dict):
        return error(400, "MANIFEST_INVALID", "manifest is not a JSON object")
    declared = content_type.split(";", 1)[0].strip() if content_type else ""
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        return error(400, "MANIFEST_INVALID", "mediaType is not a string")
    # distribution needs the Content-Type (without it, it tries schema1 and fails).
    media_type = declared
    if media_type not in MANIFEST_TYPES:
        return error(400, "MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
    if body_type and body_type != media_type:
        return error(400, "MANIFEST_INVALID", "mediaType in manifest does not match Content-Type")
    if doc.get("schemaVersion") != 2:
        return error(400, "MANIFEST_INVALID", "schemaVersion must be 2")

    def descriptor_digest(desc: object) -> str | None:
        if not isinstance(desc, dict):
            return None
        value = desc.get("digest")
        return value if isinstance(value, str) and parse_digest(value) else None

    blobs: list[str] = []
    children: list[str] = []
    artifact_type = doc.get("artifactType")
    if media_type in IMAGE_TYPES:
        config = doc.get("config")
        layers = doc.get("layers", [])
        config_digest = descriptor_digest(config)
        if config_digest is None or not isinstance(layers, list):
            return error(400, "MANIFEST_INVALID", "config and layers must be descriptors")
        blobs.append(config_digest)
        for layer in layers:
            layer_digest = descriptor_digest(layer)
            if layer_digest is None:
                return error(400, "MANIFEST_INVALID", "invalid layer descriptor")
            assert isinstance(layer, dict)
            if layer.get("urls"):  # foreign layers live elsewhere
                continue
            blobs.append(layer_digest)
        if artifact_type is None and isinstance(config, dict):
            artifact_type = config.get("mediaType")
    else:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            return error(400, "MANIFEST_INVALID", "manifests must be a list of descriptors")
        for child in manifests:
            child_digest = descriptor_digest(child)
            if child_digest is None:
                return error(400, "MANIFEST_INVALID", "invalid manifest descriptor")
            children.append(child_digest)
    subject = doc.get("subject")
    subject_digest = None
    if subject is not None:
        subject_digest = descriptor_digest(subject)
        if subject_digest is None:
            return error(400, "MANIFEST_INVALID", "invalid subject descriptor")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not isinstance(artifact_type, str | None):
        return error(400, "MANIFEST_INVALID", "invalid annotations or artifactType")
    record = ManifestRecord(
        digest=digest,
        media_type=media_type,
        size=len(body),
        subject=subject_digest,
        artifact_type=artifact_type,
        annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
    )
    return ManifestCheck(record, tuple(dict.fromkeys(blobs)), tuple(dict.fromkeys(children)))


def accepted_types(accept: str) -> set[str]:
    return {part.split(";", 1)[0].strip() for part in accept.split(",")}


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> (start, end inclusive); None = unsatisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """An upload chunk's ``Content-Range``: ``a-b`` (OCI) or ``bytes a-b/*``."""
    match = re.fullmatch(r"\s*(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?\s*", header)
    if not match:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    return (start, end) if end >= start else None


def page(items: list[str], n_text: str | None, last: str | None, default: int | None
         ) -> tuple[list[str], bool] | Response:
    """Slice a sorted list after ``last``, at most ``n`` (or ``default``) items; (page, more)."""
    if last:
        items = [item for item in items if item > last]
    limit = default
    # distribution ignores an `n` that is not a number; so do we.
    if n_text is not None and n_text.isdigit():
        limit = int(n_text)
    if limit is None or len(items) <= limit:
        return items, False
    if limit == 0:
        return [], False
    return items[:limit], True


def _state_offset(state: str) -> int | None:
    """The upload offset recorded in a `_state` query value (None if it is not ours)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(state.encode()))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return offset if isinstance(offset, int) else None


def range_header(size: int) -> str:
    # distribution: "0-<size-1>", and "0-0" for an empty upload.
    return f"0-{max(size - 1, 0)}"


class Registry:
    """The mock's logic: routing, auth, rate limits, faults, stats and the OCI handlers."""

    def __init__(
        self,
        *,
        profile: Profile,
        store: Store,
        auth: Authenticator,
        faults: FaultInjector,
        clock: Callable[[], float] = trio.current_time,
        access_log: IO[str] | None = None,
    ) -> None:
        self.profile = profile
        self.store = store
        self.auth = auth
        self.faults = faults
        self.clock = clock
        self.limiter = SlidingWindowLimiter(profile.rate_limit, count_rejected=profile.count_rejected)
        self.stats = Stats(started=clock())
        self.access_log = access_log
        self.base_url = "http://127.0.0.1"
        self.storage_url: str | None = None
        self._secret = secrets.token_bytes(32)

    def __repr__(self) -> str:
        return (f"Registry({self.base_url}, profile={self.profile.name}, "
                f"requests={self.stats.requests_total}, store={self.store!r})")

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1]

    def _location(self, req: Request, path: str) -> str:
        if not self.profile.absolute_locations:
            return path
        host = req.headers.get("host") or self.host
        return f"http://{host}{path}"

    def _upload_location(self, req: Request, name: str, upload: Upload) -> str:
        path = f"/v2/{name}/blobs/{self.profile.upload_segment}/{upload.id}"
        if self.profile.upload_state_param:
            # distribution's `_state` is an HMAC'd blob of upload state; clients must keep it.
            state = base64.urlsafe_b64encode(
                json.dumps({"name": name, "uuid": upload.id, "offset": upload.size}).encode()
            ).decode()
            path += f"?_state={quote(state)}"
        return self._location(req, path)

    def _upload_headers(self, req: Request, name: str, upload: Upload) -> list[tuple[str, str]]:
        return [
            ("Location", self._upload_location(req, name, upload)),
            ("Range", range_header(upload.size)),
            ("Docker-Upload-UUID", upload.id),
        ]

    def statistics(self) -> dict[str, Any]:
        data = self.stats.to_dict()
        store = self.store.statistics()
        data["per_principal"] = self.limiter.statistics()
        data["blobs"] = store["blobs"]
        data["blob_bytes"] = store["blob_bytes"]
        data["uploads_abandoned"] = store["uploads_cancelled"] + store["uploads_open"]
        data["store"] = store
        data["faults"] = self.faults.statistics()
        data["profile"] = self.profile.name
        return data

    def reset_stats(self) -> None:
        self.stats.reset(self.clock())
        self.limiter.reset()
        self.store.uploads_cancelled = 0
        self.faults.injected.clear()

    def record(self, req: Request, resp: Response, bytes_out: int, seconds: float) -> None:
        """Count an exchange; the server calls this just before the response leaves, so a client
        holding its last response already sees it counted."""
        if not resp.counted:
            return
        bytes_in = req.body.bytes_read
        self.stats.record(resp.kind, resp.status if not resp.abort else 0, bytes_in, bytes_out, self.clock())
        if self.access_log is not None:
            line = {
                "ts": round(time.time(), 6),
                "client": req.client,
                "principal": resp.principal,
                "method": req.method,
                "path": req.path,
                "query": urlsplit(req.target).query,
                "kind": resp.kind,
                "status": resp.status if not resp.abort else 0,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "ms": round(seconds * 1000, 3),
            }
            if resp.fault is not None:
                line["fault"] = resp.fault.kind
            self.access_log.write(json.dumps(line) + "\n")
            self.access_log.flush()

    # -- entry points ----------------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        if req.path.startswith("/_mock/"):
            resp = self._internal(req)
            resp.counted = False
            return resp
        kind, route, params = classify(req.method, req.path, req.query)
        now = self.clock()
        authorization = req.headers.get("authorization")
        if kind == "token":
            user, _ = self.auth.basic_user(authorization or "")
            principal = user or req.client
        else:
            principal = self.auth.principal_of(authorization, req.client, now)
        delay = self.faults.latency()
        if delay:
            await trio.sleep(delay)
        decision = self.limiter.check(principal, self.clock())
        if not decision.allowed:
            resp = self._throttled(decision.retry_after)
        elif (status := self.faults.server_error()) is not None:
            resp = error(status, "UNKNOWN", message=f"injected fault {status}")
        else:
            resp = await self._dispatch(req, kind, route, params, now)
        resp.kind = kind
        resp.principal = principal
        return resp

    def _throttled(self, retry_after: float) -> Response:
        limit = self.profile.rate_limit
        assert limit is not None
        message = f"retry-after: {go_duration(retry_after)}, allowed: {limit.describe()}"
        # Raw UTF-8 like GHCR (its durations may say "µs"), not a \u escape.
        body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]},
                          separators=(",", ":"), ensure_ascii=False).encode()
        headers = [("Content-Type", JSON_TYPE)]
        if self.profile.retry_after_header:
            headers.append(("Retry-After", str(max(1, int(retry_after + 0.999)))))
        return Response(429, headers, body)

    def _internal(self, req: Request) -> Response:
        if req.path == "/_mock/stats" and req.method in ("GET", "HEAD"):
            return json_response(self.statistics())
        if req.path == "/_mock/reset" and req.method == "POST":
            self.reset_stats()
            return json_response({"reset": True})
        return error(404, "UNSUPPORTED", message="unknown mock endpoint")

    def _challenge(self, result_status: int, code: str, message: str, scope: str | None) -> Response:
        headers: list[tuple[str, str]] = []
        if result_status == 401:
            value = f'Bearer realm="{self.base_url}/token",service="{self.host}"'
            if scope:
                value += f',scope="{scope}"'
            headers.append(("WWW-Authenticate", value))
        return error(result_status, code, message=message, headers=headers)

    def _authorize(self, req: Request, repo: str | None, action: str, now: float) -> Response | None:
        if not self.auth.enabled:
            return None
        result = self.auth.check(req.headers.get("authorization"), req.client, repo, action, now)
        if result.status == 0:
            return None
        scope = None
        if repo is not None:
            scope = f"repository:{repo}:pull" if action == "pull" else f"repository:{repo}:pull,push"
        elif action == "catalog":
            scope = "registry:catalog:*"
        return self._challenge(result.status, result.code, result.message, scope)

    async def _dispatch(self, req: Request, kind: str, route: str, params: dict[str, str],
                        now: float) -> Response:
        if route == "ping":
            if req.method not in ("GET", "HEAD"):
                return error(405, "UNSUPPORTED")
            # distribution answers exactly `{}` (Content-Length 2).
            return self._authorize(req, None, "pull", now) or Response(
                200, [("Content-Type", JSON_TYPE)], b"{}")
        if route == "token":
            return self._token(req, now)
        if route == "catalog":
            return self._authorize(req, None, "catalog", now) or self._catalog(req)
        if not route:
            return error(404, "UNSUPPORTED", message="404 page not found")
        name = params["name"]
        if not valid_name(name):
            return error(404, "NAME_INVALID", {"name": name})
        write = req.method in ("POST", "PATCH", "PUT", "DELETE") or (
            route == "upload" and req.method in ("GET", "HEAD"))
        denied = self._authorize(req, name, "push" if write else "pull", now)
        if denied is not None:
            return denied
        if route == "blob":
            return await self._blob(req, name, params["digest"])
        if route == "upload":
            return await self._upload(req, kind, name, params["id"], now)
        if route == "manifest":
            return await self._manifest(req, name, params["ref"])
        if route == "tags":
            return self._tags(req, name)
        return self._referrers(req, name, params["digest"])

    # -- token -----------------------------------------------------------------------------------
    def _token(self, req: Request, now: float) -> Response:
        if req.method not in ("GET", "HEAD"):
            return error(405, "UNSUPPORTED")
        authorization = req.headers.get("authorization", "")
        user, ok = self.auth.basic_user(authorization)
        if not ok:
            return error(401, "UNAUTHORIZED", message="invalid username or token",
                         headers=[("WWW-Authenticate", f'Basic realm="{self.base_url}/token"')])
        scopes = req.query.get("scope", [])
        token, grant = self.auth.issue_token(user, scopes, now)
        if user is None and scopes and not any(grant.access.values()):
            return error(401, "UNAUTHORIZED", message="anonymous access is limited to public repositories",
                         headers=[("WWW-Authenticate", f'Basic realm="{self.base_url}/token"')])
        return json_response({"token": token}, content_type="application/json")

    # -- blobs -----------------------------------------------------------------------------------
    def _blob_headers(self, digest: str, length: int) -> list[tuple[str, str]]:
        return [
            ("Content-Type", "application/octet-stream"),
            ("Docker-Content-Digest", digest),
            ("Accept-Ranges", "bytes"),
            ("ETag", f'"{digest}"'),
            ("Cache-Control", "max-age=31536000"),
        ]

    async def _blob(self, req: Request, name: str, digest: str) -> Response:
        if parse_digest(digest) is None:
            if DIGEST_SHAPE_RE.fullmatch(digest):
                return error(400, "DIGEST_INVALID", {})
            return error(404, "BLOB_UNKNOWN", digest, message="404 page not found")
        if req.method == "DELETE":
            if self.store.unlink_blob(name, digest):
                return Response(202)
            return error(404, "BLOB_UNKNOWN", digest)
        if req.method not in ("GET", "HEAD"):
            return error(405, "UNSUPPORTED")
        if not self.store.has_blob(name, digest):
            return error(404, "BLOB_UNKNOWN", digest)
        size = self.store.content_size(digest)
        assert size is not None
        if req.method == "HEAD":
            resp = Response(200, self._blob_headers(digest, size))
            resp.length = size  # advertised Content-Length, no body
            return resp
        if self.profile.blob_redirect and self.storage_url is not None:
            return Response(307, [("Location", self._signed_url(name, digest)),
                                  ("Docker-Content-Digest", digest)])
        return self._serve_content(req, digest, size)

    def _serve_content(self, req: Request, digest: str, size: int) -> Response:
        headers = self._blob_headers(digest, size)
        start, end = 0, size - 1
        status = 200
        range_text = req.headers.get("range")
        if range_text:
            wanted = parse_range(range_text, size)
            if wanted is None:
                return Response(416, [("Content-Range", f"bytes */{size}"), *headers[:1]])
            start, end = wanted
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        resp = Response(status, headers)
        length = end - start + 1
        if length > 0:
            resp.source = self.store.open_content(digest)
            resp.offset = start
            resp.length = length
            resp.fault = self.faults.body_fault(length, digest)
        return resp

    def _signature(self, name: str, digest: str, expires: int) -> str:
        message = f"{name}\n{digest}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _signed_url(self, name: str, digest: str) -> str:
        expires = int(time.time() + self.profile.redirect_ttl)
        sig = self._signature(name, digest, expires)
        return f"{self.storage_url}/blobs/{digest}?repo={quote(name, safe='')}&expires={expires}&sig={sig}"

    async def handle_storage(self, req: Request) -> Response:
        """The storage host: signed URLs, no auth, every Authorization header is a leak."""
        if req.headers.get("authorization") is not None:
            self.stats.auth_leaks += 1
        resp = self._storage(req)
        resp.kind = "storage_get"
        resp.principal = req.client
        return resp

    def _storage(self, req: Request) -> Response:
        match = re.fullmatch(r"/blobs/(?P<digest>[^/]+)", req.path)
        if match is None or req.method not in ("GET", "HEAD"):
            return error(404, "UNSUPPORTED", message="404 page not found")
        digest = match.group("digest")
        name, expires_text, sig = req.arg("repo") or "", req.arg("expires") or "", req.arg("sig") or ""
        if not expires_text.isdigit() or not hmac.compare_digest(
                sig, self._signature(name, digest, int(expires_text))):
            return error(403, "DENIED", message="signature does not match")
        if int(expires_text) < time.time():
            return error(403, "DENIED", message="request has expired")
        if (status := self.faults.server_error()) is not None:
            return error(status, "UNKNOWN", message=f"injected fault {status}")
        size = self.store.content_size(digest)
        if size is None:
            return error(404, "BLOB_UNKNOWN", digest)
        if req.method == "HEAD":
            resp = Response(200, self._blob_headers(digest, size))
            resp.length = size
            return resp
        return self._serve_content(req, digest, size)

    # -- uploads ---------------------------------------------------------------------------------
    async def _stream_into(self, req: Request, upload: Upload, ranged: bool) -> Response | None:
        """Copy the request body into ``upload``; an error response if it must stop."""
        limit = self.profile.max_ranged_patch if ranged else None
        if limit is not None and (req.body.content_length or 0) > limit:
            return error(416, "BLOB_UPLOAD_INVALID", message="requested range not satisfiable: "
                         f"a ranged PATCH may carry at most {limit} bytes", close=True)
        reset = self.faults.reset()
        async for chunk in req.body.chunks():
            upload.write(chunk)
            if reset:
                return Response(0, abort=True)
            if limit is not None and upload.size > limit:
                return error(416, "BLOB_UPLOAD_INVALID", message="requested range not satisfiable",
                             close=True)
        return None

    def _lookup_upload(self, req: Request, name: str, upload_id: str) -> Upload | Response:
        upload = self.store.uploads.get(upload_id)
        if upload is None or upload.repo != name:
            return error(404, "BLOB_UPLOAD_UNKNOWN", upload_id or None)
        state = req.arg("_state")
        if state is not None and self.profile.upload_state_param and _state_offset(state) != upload.size:
            # distribution checks `_state` against the session: a stale Location (not the one
            # from the latest response) or a forged one is refused.
            return error(404, "BLOB_UPLOAD_INVALID", {})
        return upload

    async def _finish(self, req: Request, name: str, upload: Upload, digest: str,
                      keep_on_mismatch: bool = True) -> Response:
        algorithm = digest.partition(":")[0]
        if upload.digest(algorithm) != digest:
            # Nothing is stored. distribution leaves the session open (with any PUT body appended);
            # a monolithic POST's session was never shown to the client, so it goes.
            if not keep_on_mismatch:
                self.store.cancel_upload(upload)
            self.stats.digest_invalid += 1
            return error(400, "DIGEST_INVALID", digest)
        self.store.commit_upload(upload, digest)
        return Response(201, [
            ("Location", self._location(req, f"/v2/{name}/blobs/{digest}")),
            ("Docker-Content-Digest", digest),
        ])

    async def _upload(self, req: Request, kind: str, name: str, upload_id: str, now: float) -> Response:
        method = req.method
        if method == "POST" and not upload_id:
            return await self._upload_post(req, kind, name, now)
        if not upload_id:
            return error(404, "BLOB_UPLOAD_UNKNOWN")
        found = self._lookup_upload(req, name, upload_id)
        if isinstance(found, Response):
            return found
        upload = found
        if method in ("GET", "HEAD"):
            return Response(204, self._upload_headers(req, name, upload))
        if method == "DELETE":
            self.store.cancel_upload(upload)
            return Response(204, [("Docker-Upload-UUID", upload.id)])
        if method == "PATCH":
            content_range = req.headers.get("content-range")
            ranged = content_range is not None
            if content_range is not None:
                parsed = parse_content_range(content_range)
                if parsed is None:
                    return error(400, "BLOB_UPLOAD_INVALID", message="invalid Content-Range", close=True)
                if not self.profile.last_patch_wins and parsed[0] != upload.size:
                    resp = error(416, "BLOB_UPLOAD_INVALID", message="requested range not satisfiable",
                                 close=True)
                    resp.headers.extend(self._upload_headers(req, name, upload))
                    return resp
            if self.profile.last_patch_wins:
                upload.restart()
            upload.writes += 1
            stopped = await self._stream_into(req, upload, ranged)
            if stopped is not None:
                return stopped
            return Response(202, self._upload_headers(req, name, upload))
        if method == "PUT":
            digest = req.arg("digest")
            if digest is None or parse_digest(digest) is None:
                # distribution: an unparsable digest is refused before the body is read, and
                # the session stays open.
                self.stats.digest_invalid += 1
                return error(400, "DIGEST_INVALID", digest, message="invalid or missing digest")
            if req.body.content_length != 0:
                stopped = await self._stream_into(req, upload, False)
                if stopped is not None:
                    return stopped
            return await self._finish(req, name, upload, digest)
        return error(405, "UNSUPPORTED")

    async def _upload_post(self, req: Request, kind: str, name: str, now: float) -> Response:
        mount, source = req.arg("mount"), req.arg("from")
        if kind == "mount" and mount:
            if self._can_mount(req, name, mount, source, now):
                self.store.link_blob(name, mount)
                return Response(201, [
                    ("Location", self._location(req, f"/v2/{name}/blobs/{mount}")),
                    ("Docker-Content-Digest", mount),
                ])
        digest = req.arg("digest")
        if digest is not None and parse_digest(digest) is None:
            self.stats.digest_invalid += 1
            return error(400, "DIGEST_INVALID", digest, message="invalid digest")
        upload = self.store.start_upload(name, now)
        if digest is not None:
            stopped = await self._stream_into(req, upload, False)
            if stopped is not None:
                return stopped
            return await self._finish(req, name, upload, digest, keep_on_mismatch=False)
        return Response(202, self._upload_headers(req, name, upload))

    def _can_mount(self, req: Request, name: str, digest: str, source: str | None, now: float) -> bool:
        if source is None or parse_digest(digest) is None or not valid_name(source):
            return False
        if self.profile.mount_same_namespace_only and namespace_of(source) != namespace_of(name):
            return False
        if not self.store.has_blob(source, digest):
            return False
        if self.auth.enabled:
            check = self.auth.check(req.headers.get("authorization"), req.client, source, "pull", now)
            return check.status == 0
        return True

    # -- manifests -------------------------------------------------------------------------------
    async def _read_body(self, req: Request, limit: int) -> bytes | None:
        if req.body.content_length is not None and req.body.content_length > limit:
            return None
        parts: list[bytes | bytearray] = []
        total = 0
        async for chunk in req.body.chunks():
            total += len(chunk)
            if total > limit:
                return None
            parts.append(chunk)
        return b"".join(parts)

    async def _manifest(self, req: Request, name: str, reference: str) -> Response:
        is_digest = parse_digest(reference) is not None
        if not is_digest and TAG_RE.fullmatch(reference) is None:
            if DIGEST_SHAPE_RE.fullmatch(reference):
                return error(400, "DIGEST_INVALID", {})
            # distribution's router does not match such a path at all.
            return error(404, "MANIFEST_UNKNOWN", reference, message="404 page not found")
        if req.method == "PUT":
            return await self._put_manifest(req, name, reference, is_digest)
        if req.method == "DELETE":
            if is_digest:
                if self.store.delete_manifest(name, reference):
                    return Response(202)
            elif self.store.delete_tag(name, reference):
                return Response(202)
            return error(404, "MANIFEST_UNKNOWN", reference)
        if req.method not in ("GET", "HEAD"):
            return error(405, "UNSUPPORTED")
        record = self.store.resolve(name, reference)
        if record is None:
            return error(404, "MANIFEST_UNKNOWN", reference)
        if (self.profile.oci_by_tag_needs_accept and not is_digest
                and record.media_type in (OCI_MANIFEST, OCI_INDEX)
                and record.media_type not in accepted_types(req.headers.get("accept", ""))):
            return error(404, "MANIFEST_UNKNOWN", reference,
                         message="OCI manifest found, but accept header does not support OCI manifests")
        headers = [
            ("Content-Type", record.media_type),
            ("Docker-Content-Digest", record.digest),
            ("ETag", f'"{record.digest}"'),
        ]
        if record.subject and self.profile.referrers_api:
            headers.append(("OCI-Subject", record.subject))
        if req.method == "HEAD":
            resp = Response(200, headers)
            resp.length = record.size
            return resp
        return Response(200, headers, self.store.read_content(record.digest))

    async def _put_manifest(self, req: Request, name: str, reference: str, is_digest: bool) -> Response:
        limit = self.profile.manifest_max_bytes
        body = await self._read_body(req, limit)
        if body is None:
            return error(413, "MANIFEST_INVALID", message=f"manifest exceeds {limit} bytes", close=True)
        checked = check_manifest(body, req.headers.get("content-type"))
        if isinstance(checked, Response):
            return checked
        record = checked.record
        if is_digest and reference != record.digest:
            if parse_digest(reference) and reference.startswith("sha512:"):
                if reference != "sha512:" + hashlib.sha512(body).hexdigest():
                    return error(400, "DIGEST_INVALID", reference)
            else:
                return error(400, "DIGEST_INVALID", reference)
        missing = [d for d in checked.blobs if not self.store.has_blob(name, d)]
        repo = self.store.repo(name)
        missing += [d for d in checked.children if repo is None or d not in repo.manifests]
        if missing:
            body_bytes = error_body(*[("MANIFEST_BLOB_UNKNOWN", MESSAGES["MANIFEST_BLOB_UNKNOWN"], d)
                                      for d in missing])
            return Response(400, [("Content-Type", JSON_TYPE)], body_bytes)
        self.store.put_manifest(name, record, body, None if is_digest else reference)
        headers = [
            ("Location", self._location(req, f"/v2/{name}/manifests/{record.digest}")),
            ("Docker-Content-Digest", record.digest),
        ]
        # OCI 1.1: OCI-Subject tells the client the registry indexed the subject (referrers API);
        # without it (GHCR) clients maintain the `sha256-<hex>` fallback tag themselves.
        if record.subject and self.profile.referrers_api:
            headers.append(("OCI-Subject", record.subject))
        return Response(201, headers)

    # -- listings --------------------------------------------------------------------------------
    def _tags(self, req: Request, name: str) -> Response:
        if req.method not in ("GET", "HEAD"):
            return error(405, "UNSUPPORTED")
        repo = self.store.repo(name)
        if repo is None or not (repo.tags or repo.manifests or repo.tagged):
            return error(404, "NAME_UNKNOWN", {"name": name})
        sliced = page(sorted(repo.tags), req.arg("n"), req.arg("last"), self.profile.tags_page_size)
        if isinstance(sliced, Response):
            return sliced
        tags, more = sliced
        if not tags and not more and self.profile.empty_tags_null:
            return json_response({"name": name, "tags": None})
        headers: list[tuple[str, str]] = []
        if more:
            n = len(tags)
            headers.append(("Link", f'</v2/{name}/tags/list?last={quote(tags[-1])}&n={n}>; rel="next"'))
        return json_response({"name": name, "tags": tags}, headers=headers)

    def _catalog(self, req: Request) -> Response:
        names = [n for n, r in self.store.repos.items() if r.manifests or r.blobs or r.tags]
        sliced = page(sorted(names), req.arg("n"), req.arg("last"), self.profile.catalog_page_size)
        if isinstance(sliced, Response):
            return sliced
        repos, more = sliced
        headers: list[tuple[str, str]] = []
        if more:
            headers.append(("Link", f'</v2/_catalog?last={quote(repos[-1])}&n={len(repos)}>; rel="next"'))
        return json_response({"repositories": repos}, headers=headers)

    def _referrers(self, req: Request, name: str, digest: str) -> Response:
        if not self.profile.referrers_api:
            return error(404, "MANIFEST_UNKNOWN", digest)
        if parse_digest(digest) is None:
            return error(400, "DIGEST_INVALID", digest, message="invalid digest")
        wanted = req.arg("artifactType")
        descriptors = []
        for record in self.store.referrers(name, digest):
            if wanted and record.artifact_type != wanted:
                continue
            desc: dict[str, object] = {
                "mediaType": record.media_type, "digest": record.digest, "size": record.size,
            }
            if record.artifact_type:
                desc["artifactType"] = record.artifact_type
            if record.annotations:
                desc["annotations"] = dict(record.annotations)
            descriptors.append(desc)
        headers = [("OCI-Filters-Applied", "artifactType")] if wanted else []
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return json_response(index, content_type=OCI_INDEX, headers=headers)
