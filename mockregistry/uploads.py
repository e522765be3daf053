"""Blob upload sessions (OCI Distribution Spec 1.1, "Pushing blobs"): POST (with mount or a
monolithic body), chunked and streamed PATCH, the closing PUT, status and cancel, with the
profile's quirks (GHCR: last PATCH wins, ranged PATCH cap, mounts only within a namespace).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from .auth import Authenticator, namespace_of
from .blobbytes import Upload
from .http import Request, Response, error
from .quirks import FaultInjector, Profile
from .routes import valid_name
from .stats import Stats
from .store import Store, parse_digest

# Location for a path: absolute or relative, as the profile's registry answers.
Locate = Callable[[Request, str], str]


def parse_content_range(header: str) -> tuple[int, int] | None:
    """An upload chunk's ``Content-Range``: ``a-b`` (OCI) or ``bytes a-b/*``."""
    match = re.fullmatch(r"\s*(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?\s*", header)
    if not match:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    return (start, end) if end >= start else None


def range_header(size: int) -> str:
    # distribution: "0-<size-1>", and "0-0" for an empty upload.
    return f"0-{max(size - 1, 0)}"


def _state_offset(state: str) -> int | None:
    """The upload offset recorded in a `_state` query value (None if it is not ours)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(state.encode()))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return offset if isinstance(offset, int) else None


class UploadHandlers:
    """The upload endpoints; `handle` picks the method's handler from a table."""

    def __init__(self, *, profile: Profile, store: Store, auth: Authenticator, faults: FaultInjector,
                 stats: Stats, locate: Locate) -> None:
        self.profile = profile
        self.store = store
        self.auth = auth
        self.faults = faults
        self.stats = stats
        self.locate = locate
        self._methods: dict[str, Callable[[Request, str, Upload], Awaitable[Response]]] = {
            "GET": self._status, "HEAD": self._status, "DELETE": self._cancel,
            "PATCH": self._patch, "PUT": self._put,
        }

    async def handle(self, req: Request, kind: str, name: str, upload_id: str, now: float) -> Response:
        if req.method == "POST" and not upload_id:
            return await self._post(req, kind, name, now)
        if not upload_id:
            return error(404, "BLOB_UPLOAD_UNKNOWN")
        found = self._lookup(req, name, upload_id)
        if isinstance(found, Response):
            return found
        handler = self._methods.get(req.method)
        if handler is None:
            return error(405, "UNSUPPORTED")
        return await handler(req, name, found)

    # -- session state ---------------------------------------------------------------------------
    def _location(self, req: Request, name: str, upload: Upload) -> str:
        path = f"/v2/{name}/blobs/{self.profile.upload_segment}/{upload.id}"
        if self.profile.upload_state_param:
            # distribution's `_state` is an HMAC'd blob of upload state; clients must keep it.
            state = base64.urlsafe_b64encode(
                json.dumps({"name": name, "uuid": upload.id, "offset": upload.size}).encode()
            ).decode()
            path += f"?_state={quote(state)}"
        return self.locate(req, path)

    def _headers(self, req: Request, name: str, upload: Upload) -> list[tuple[str, str]]:
        return [
            ("Location", self._location(req, name, upload)),
            ("Range", range_header(upload.size)),
            ("Docker-Upload-UUID", upload.id),
        ]

    def _lookup(self, req: Request, name: str, upload_id: str) -> Upload | Response:
        upload = self.store.uploads.get(upload_id)
        if upload is None or upload.repo != name:
            return error(404, "BLOB_UPLOAD_UNKNOWN", upload_id or None)
        state = req.arg("_state")
        if state is not None and self.profile.upload_state_param and _state_offset(state) != upload.size:
            # distribution checks `_state` against the session: a stale Location (not the one
            # from the latest response) or a forged one is refused.
            return error(404, "BLOB_UPLOAD_INVALID", {})
        return upload

    # -- the methods on a session ----------------------------------------------------------------
    async def _status(self, req: Request, name: str, upload: Upload) -> Response:
        return Response(204, self._headers(req, name, upload))

    async def _cancel(self, req: Request, name: str, upload: Upload) -> Response:
        self.store.cancel_upload(upload)
        return Response(204, [("Docker-Upload-UUID", upload.id)])

    async def _patch(self, req: Request, name: str, upload: Upload) -> Response:
        content_range = req.headers.get("content-range")
        if content_range is not None:
            parsed = parse_content_range(content_range)
            if parsed is None:
                return error(400, "BLOB_UPLOAD_INVALID", message="invalid Content-Range", close=True)
            if not self.profile.last_patch_wins and parsed[0] != upload.size:
                # OCI 1.1: a chunk that does not start at the session's size gets 416.
                resp = error(416, "BLOB_UPLOAD_INVALID", message="requested range not satisfiable",
                             close=True)
                resp.headers.extend(self._headers(req, name, upload))
                return resp
        if self.profile.last_patch_wins:
            upload.restart()
        upload.writes += 1
        stopped = await self._stream_into(req, upload, ranged=content_range is not None)
        if stopped is not None:
            return stopped
        return Response(202, self._headers(req, name, upload))

    async def _put(self, req: Request, name: str, upload: Upload) -> Response:
        digest = req.arg("digest")
        if digest is None or parse_digest(digest) is None:
            # distribution: an unparsable digest is refused before the body is read, and
            # the session stays open.
            self.stats.digest_invalid += 1
            return error(400, "DIGEST_INVALID", digest, message="invalid or missing digest")
        if req.body.content_length != 0:
            stopped = await self._stream_into(req, upload, ranged=False)
            if stopped is not None:
                return stopped
        return await self._finish(req, name, upload, digest)

    async def _post(self, req: Request, kind: str, name: str, now: float) -> Response:
        mount, source = req.arg("mount"), req.arg("from")
        if kind == "mount" and mount and self._can_mount(req, name, mount, source, now):
            self.store.link_blob(name, mount)
            return Response(201, [
                ("Location", self.locate(req, f"/v2/{name}/blobs/{mount}")),
                ("Docker-Content-Digest", mount),
            ])
        digest = req.arg("digest")
        if digest is not None and parse_digest(digest) is None:
            self.stats.digest_invalid += 1
            return error(400, "DIGEST_INVALID", digest, message="invalid digest")
        upload = self.store.start_upload(name, now)
        if digest is not None:
            stopped = await self._stream_into(req, upload, ranged=False)
            if stopped is not None:
                return stopped
            return await self._finish(req, name, upload, digest, keep_on_mismatch=False)
        return Response(202, self._headers(req, name, upload))

    # -- helpers ---------------------------------------------------------------------------------
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
            ("Location", self.locate(req, f"/v2/{name}/blobs/{digest}")),
            ("Docker-Content-Digest", digest),
        ])

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
