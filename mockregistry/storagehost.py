"""The storage host behind blob redirects: the registry answers a blob GET with 307 to a signed,
expiring URL here, as GHCR does to its CDN (observed on ghcr.io). It takes no auth, so any
Authorization header a client sends it is counted as a credential leak.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from urllib.parse import quote

from .content import content_response, head_response
from .http import Request, Response, error
from .quirks import FaultInjector, Profile
from .stats import Stats
from .store import Store


class StorageHost:
    """Signs blob URLs and serves them; expiry reads ``wall_clock`` (epoch seconds), like the
    signed URLs of real object stores."""

    def __init__(self, *, profile: Profile, store: Store, faults: FaultInjector, stats: Stats,
                 wall_clock: Callable[[], float]) -> None:
        self.profile = profile
        self.store = store
        self.faults = faults
        self.stats = stats
        self.wall_clock = wall_clock
        self.url: str | None = None
        self._secret = secrets.token_bytes(32)

    def signature(self, name: str, digest: str, expires: int) -> str:
        message = f"{name}\n{digest}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, name: str, digest: str) -> str:
        expires = int(self.wall_clock() + self.profile.redirect_ttl)
        sig = self.signature(name, digest, expires)
        return f"{self.url}/blobs/{digest}?repo={quote(name, safe='')}&expires={expires}&sig={sig}"

    async def handle(self, req: Request) -> Response:
        if req.headers.get("authorization") is not None:
            self.stats.auth_leaks += 1
        resp = self._serve(req)
        resp.kind = "storage_get"
        resp.principal = req.client
        return resp

    def _serve(self, req: Request) -> Response:
        match = re.fullmatch(r"/blobs/(?P<digest>[^/]+)", req.path)
        if match is None or req.method not in ("GET", "HEAD"):
            return error(404, "UNSUPPORTED", message="404 page not found")
        digest = match.group("digest")
        name, expires_text, sig = req.arg("repo") or "", req.arg("expires") or "", req.arg("sig") or ""
        if not expires_text.isdigit() or not hmac.compare_digest(
                sig, self.signature(name, digest, int(expires_text))):
            return error(403, "DENIED", message="signature does not match")
        if int(expires_text) < self.wall_clock():
            return error(403, "DENIED", message="request has expired")
        if (status := self.faults.server_error()) is not None:
            return error(status, "UNKNOWN", message=f"injected fault {status}")
        size = self.store.content_size(digest)
        if size is None:
            return error(404, "BLOB_UNKNOWN", digest)
        if req.method == "HEAD":
            return head_response(digest, size)
        return content_response(req, self.store, self.faults, digest, size)
