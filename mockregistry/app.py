"""The registry's request -> response logic for the OCI Distribution API (spec 1.1): routing to
the handlers, auth challenges, rate limits, injected faults, the blob and manifest handlers, and
the stats and access log. Uploads, listings and the storage host live in their own modules.

Handlers see a parsed `Request` and answer a `Response`; `connection.py` moves the bytes. Status codes
and headers follow the CNCF distribution registry 2.8 where the spec is silent (DIFFERENCES.md).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urlsplit

import trio

from .auth import Authenticator
from .content import content_response, head_response
from .http import JSON_TYPE, MESSAGES, Request, Response, error, error_body, json_response
from .listings import catalog_response, referrers_response, tags_response
from .manifests import OCI_INDEX, OCI_MANIFEST, accepted_types, check_manifest
from .pullquota import PULL_LIMIT_MESSAGE, PullQuota
from .quirks import FaultInjector, Profile, go_duration
from .ratelimit import SlidingWindowLimiter
from .routes import DIGEST_SHAPE_RE, TAG_RE, classify, valid_name
from .stats import Stats
from .storagehost import StorageHost
from .store import Store, parse_digest
from .uploads import UploadHandlers


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
        wall_clock: Callable[[], float] = time.time,
        access_log: IO[str] | None = None,
    ) -> None:
        """``clock`` (seconds on trio's clock) drives rate windows, tokens, upload ages and the
        stats timeline; ``wall_clock`` (epoch seconds) dates what leaves the process: signed-URL
        expiry and access-log timestamps. Tests inject both, as trio's MockClock keeps its real
        clock as an attribute."""
        self.profile = profile
        self.store = store
        self.auth = auth
        self.faults = faults
        self.clock = clock
        self.wall_clock = wall_clock
        self.limiter = SlidingWindowLimiter(profile.rate_limit, count_rejected=profile.count_rejected)
        self.pulls = PullQuota(profile.pull_limit) if profile.pull_limit is not None else None
        self.stats = Stats(started=clock())
        self.access_log = access_log
        self.base_url = "http://127.0.0.1"
        self.storage = StorageHost(profile=profile, store=store, faults=faults, stats=self.stats,
                                   wall_clock=wall_clock)
        self.uploads = UploadHandlers(profile=profile, store=store, auth=auth, faults=faults,
                                      stats=self.stats, locate=self._location)

    def __repr__(self) -> str:
        return (f"Registry({self.base_url}, profile={self.profile.name}, "
                f"requests={self.stats.requests_total}, store={self.store!r})")

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1]

    @property
    def storage_url(self) -> str | None:
        """The storage host's base URL once its listener is up (blob redirects need it)."""
        return self.storage.url

    @storage_url.setter
    def storage_url(self, url: str | None) -> None:
        self.storage.url = url

    def _location(self, req: Request, path: str) -> str:
        if not self.profile.absolute_locations:
            return path
        host = req.headers.get("host") or self.host
        return f"http://{host}{path}"

    def statistics(self) -> dict[str, Any]:
        data = self.stats.to_dict()
        store = self.store.statistics()
        data["per_principal"] = self.limiter.statistics()
        if self.pulls is not None:
            data["pulls"] = self.pulls.statistics(self.clock())
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
        if self.pulls is not None:
            self.pulls.reset()
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
                "ts": round(self.wall_clock(), 6),
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

    def record_cut_short(self, resp: Response, unsent: int) -> None:
        """Take back the body bytes `record` counted but that never left (a reset, a truncation)."""
        if resp.counted and unsent > 0:
            self.stats.take_back_bytes_out(unsent)

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
        pulls = self.pulls
        if not decision.allowed:
            resp = self._throttled(decision.retry_after)
        elif pulls is not None and kind == "manifest_get" and not pulls.allows(principal, self.clock()):
            resp = error(429, "TOOMANYREQUESTS", message=PULL_LIMIT_MESSAGE)
        elif (status := self.faults.server_error()) is not None:
            resp = error(status, "UNKNOWN", message=f"injected fault {status}")
        else:
            resp = await self._dispatch(req, kind, route, params, now)
            if pulls is not None and kind == "manifest_get" and resp.status == 200:
                pulls.spend(principal, self.clock())
        if pulls is not None:
            # Docker Hub: the source is the client address when anonymous (its docs' example
            # shows an IP); authenticated, an account id (the mock: the user name).
            resp.headers.extend(pulls.headers(principal, principal, self.clock()))
        resp.kind = kind
        resp.principal = principal
        return resp

    async def handle_storage(self, req: Request) -> Response:
        """The storage host's entry point: signed URLs, no auth, no rate limit."""
        return await self.storage.handle(req)

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
            return self._authorize(req, None, "catalog", now) or catalog_response(req, self.store, self.profile)
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
            return await self.uploads.handle(req, kind, name, params["id"], now)
        if route == "manifest":
            return await self._manifest(req, name, params["ref"])
        if route == "tags":
            return tags_response(req, self.store, self.profile, name)
        return referrers_response(req, self.store, self.profile, name, params["digest"])

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
            return head_response(digest, size)
        if self.profile.blob_redirect and self.storage.url is not None:
            return Response(307, [("Location", self.storage.signed_url(name, digest)),
                                  ("Docker-Content-Digest", digest)])
        return content_response(req, self.store, self.faults, digest, size)

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
            deleted = (self.store.delete_manifest(name, reference) if is_digest
                       else self.store.delete_tag(name, reference))
            return Response(202) if deleted else error(404, "MANIFEST_UNKNOWN", reference)
        if req.method not in ("GET", "HEAD"):
            return error(405, "UNSUPPORTED")
        return self._get_manifest(req, name, reference, is_digest)

    def _get_manifest(self, req: Request, name: str, reference: str, is_digest: bool) -> Response:
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

