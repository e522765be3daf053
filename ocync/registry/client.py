"""RegistryClient: the OCI distribution-spec API of one registry for one credential
(tags, manifests, referrers, blobs, uploads), over :class:`RequestCore`, which sends, counts
and rate-controls every request. The paged listings (tags, catalog, referrers) are
:class:`~ocync.registry.listings.ListingRequests`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Container, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import trio

from ocync.errors import IntegrityError, ManifestError, OcyncError, TransportError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.errorbody import header_digest, parse_oci_errors
from ocync.oci.manifest import MAX_MANIFEST_SIZE, Manifest, parse_manifest
from ocync.registry.bodystream import BlobStream
from ocync.registry.exchange import MAX_THROTTLE_RETRIES, TIMEOUT_ATTEMPTS, HostSilence
from ocync.registry.listings import ListingRequests
from ocync.registry.neterrors import redact_url
from ocync.registry.origin import Origin
from ocync.registry.requestcore import USER_AGENT, Response, registry_error
from ocync.registry.requeststats import ClientStatistics, RequestLedger
from ocync.registry.settings import ClientSettings
from ocync.registry.urls import digest_query, location_url, registry_base_url

log = logging.getLogger(__name__)




@dataclass(frozen=True, slots=True)
class ManifestHead:
    digest: Digest
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class UploadSession:
    """An open blob upload: the absolute URL of its Location, followed verbatim."""

    repository: str
    location: str

    def __repr__(self) -> str:
        return f"UploadSession({self.repository}, {redact_url(self.location)})"


@dataclass(frozen=True, slots=True)
class MountResult:
    """``mounted`` (201) or not, with the upload session the 202 opened (reuse it)."""

    mounted: bool
    session: UploadSession | None = None


def _verify(raw: bytes, computed: Digest, expected: Digest, what: str) -> None:
    """IntegrityError unless ``raw`` has digest ``expected`` (``computed`` reused when the
    algorithm agrees: the body is hashed once)."""
    actual = computed if computed.algorithm == expected.algorithm else Digest.of(raw, expected.algorithm)
    if actual != expected:
        raise IntegrityError(f"{what}: digest mismatch: expected {expected}, computed {actual}")


def check_manifest_response(what: str, raw: bytes, headers: httpx.Headers, base_url: str) -> bool:
    """False when the body is shorter than its Content-Length (retry); ManifestError for an
    HTML page (a web server or login page, not a registry: say so, not "digest mismatch")."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) != len(raw):
        return False
    content_type = mt.base_type(headers.get("content-type", ""))
    if "html" in content_type:
        raise ManifestError(f"{what}: the registry answered {content_type}, not a manifest "
                            f"(is {base_url} a registry?)")
    return True


class RegistryClient(ListingRequests):
    """The distribution API of one registry for one credential. Use as an async context
    manager (opens the transports, resolves credentials, picks the principal's controller)."""

    # -- API: basics -------------------------------------------------------------------------

    async def ping(self) -> bool:
        """``GET /v2/``: True if the registry answers (200, or 401 which teaches the challenge)."""
        response = await self._exchange("ping", "GET", f"{self.base_url}/v2/", ok=(200,), authenticate=False)
        if response.status == 401:
            self.auth.learn_challenge(response.headers)
            return True
        return response.status == 200

    # -- API: manifests ----------------------------------------------------------------------

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """Digest, media type and size of a manifest, or None if it does not exist."""
        url = self.url(f"{repository}/manifests/{reference}")
        response = await self._exchange(
            "manifest_head",
            "HEAD",
            url,
            scopes=self._scopes(repository),
            headers={"Accept": mt.MANIFEST_ACCEPT_HEADER},
            ok=(200,),
            follow=True,
        )
        if response.status == 404:
            return None
        if response.status != 200:
            raise registry_error("HEAD", url, response.status, b"", self._manifest_what(repository, reference))
        digest_text = response.headers.get("docker-content-digest")
        size_text = response.headers.get("content-length", "")
        media_type = mt.base_type(response.headers.get("content-type", ""))
        if digest_text is None or not size_text.isdigit():
            # Some registries omit the digest on HEAD; a GET tells everything.
            manifest = await self.get_manifest(repository, reference)
            return ManifestHead(manifest.digest, manifest.media_type, manifest.size)
        digest = header_digest(digest_text, self._manifest_what(repository, reference))
        return ManifestHead(digest, media_type, int(size_text))

    def _manifest_what(self, repository: str, reference: str) -> str:
        sep = "@" if ":" in reference else ":"
        return f"manifest {self.name}/{repository}{sep}{reference}"

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest's bytes as stored, verified against the digest asked for and the one
        the registry claims (hashed once); a truncated or mismatching body is fetched again."""
        url = self.url(f"{repository}/manifests/{reference}")
        what = self._manifest_what(repository, reference)
        expected = Digest.parse(reference) if ":" in reference else None
        for attempt in range(1, self.settings.attempts + 1):
            last = attempt >= self.settings.attempts
            response = await self._exchange(
                "manifest_get", "GET", url, scopes=self._scopes(repository),
                headers={"Accept": mt.MANIFEST_ACCEPT_HEADER}, ok=(200,), follow=True, max_body=MAX_MANIFEST_SIZE,
            )
            if response.status != 200:
                raise registry_error("GET", url, response.status, response.body, what)
            raw = response.body
            if not check_manifest_response(what, raw, response.headers, self.base_url):
                if not last:
                    continue
                declared = response.headers.get("content-length")
                raise TransportError(f"{what}: body truncated ({len(raw)} of {declared} bytes)")
            claimed_text = response.headers.get("docker-content-digest")
            try:
                computed = Digest.of(raw, expected.algorithm if expected else "sha256")
                if expected is not None:
                    _verify(raw, computed, expected, what)
                if claimed_text:
                    _verify(raw, computed, header_digest(claimed_text, what), f"{what} (Docker-Content-Digest)")
            except IntegrityError:
                if last:
                    raise
                self.counters.retries += 1
                continue
            try:
                return parse_manifest(raw, response.headers.get("content-type", "") or None, computed)
            except ManifestError as exc:
                raise ManifestError(f"{what}: {str(exc).removeprefix(f'manifest {computed.short}: ')}") from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> Digest:
        """Store ``raw`` as is under ``reference`` (tag or digest); returns its digest."""
        if len(raw) > MAX_MANIFEST_SIZE:
            raise ManifestError(f"manifest for {repository}:{reference}: {len(raw)} bytes exceeds {MAX_MANIFEST_SIZE}")
        self.want_push(repository)
        digest = Digest.of(raw)
        url = self.url(f"{repository}/manifests/{reference}")
        response = await self._exchange(
            "manifest_put",
            "PUT",
            url,
            scopes=self._scopes(repository, push=True),
            headers={"Content-Type": media_type},
            content=raw,
            ok=(200, 201, 202),
        )
        if response.status not in (200, 201, 202):
            raise registry_error("PUT", url, response.status, response.body, f"pushing {self._manifest_what(repository, reference)}")
        returned = response.headers.get("docker-content-digest")
        if returned and returned != str(digest):
            raise IntegrityError(
                f"pushing {self._manifest_what(repository, reference)}: registry stored {returned}, expected {digest}"
            )
        return digest

    async def delete_manifest(self, repository: str, reference: str) -> bool:
        """``DELETE /v2/<name>/manifests/<reference>`` (a tag: OCI distribution 1.1; a digest
        removes every tag on it): True deleted (202), False absent (404)."""
        url = self.url(f"{repository}/manifests/{reference}")
        response = await self._exchange(
            "manifest_delete", "DELETE", url, scopes=self._scopes(repository, push=True), ok=(200, 202, 404)
        )
        if response.status == 404:
            return False
        if response.status not in (200, 202):
            raise registry_error("DELETE", url, response.status, response.body, f"deleting {self._manifest_what(repository, reference)}")
        return True

    # -- API: blobs --------------------------------------------------------------------------

    async def head_blob(self, repository: str, digest: Digest) -> int | None:
        """Size of the blob in ``repository``, or None if it is not there."""
        url = self.url(f"{repository}/blobs/{digest}")
        response = await self._exchange(
            "blob_head", "HEAD", url, scopes=self._scopes(repository), ok=(200,), follow=True
        )
        if response.status == 404:
            return None
        if response.status != 200:
            raise registry_error("HEAD", url, response.status, b"", f"blob {digest.short} in {self.name}/{repository}")
        size = response.headers.get("content-length", "")
        return int(size) if size.isdigit() else 0

    async def start_upload(self, repository: str) -> UploadSession:
        """``POST /blobs/uploads/`` -> the session (Location followed verbatim)."""
        self.want_push(repository)
        url = self.url(f"{repository}/blobs/uploads/")
        response = await self._exchange(
            "upload_post", "POST", url, scopes=self._scopes(repository, push=True), content=b"", ok=(202,)
        )
        if response.status != 202:
            raise registry_error("POST", url, response.status, response.body, f"starting an upload to {self.name}/{repository}")
        return UploadSession(repository, self._location(response, url))

    async def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> MountResult:
        """``POST ?mount=&from=``: 201 mounted; 202 not, and the session it opened is returned."""
        self.want_push(repository)
        url = self.url(f"{repository}/blobs/uploads/") + "?" + urlencode({"mount": str(digest), "from": from_repository})
        response = await self._exchange(
            "mount",
            "POST",
            url,
            scopes=self._scopes(repository, push=True, mount_from=from_repository),
            content=b"",
            ok=(201, 202),
        )
        if response.status == 201:
            return MountResult(True)
        if response.status == 202:
            return MountResult(False, UploadSession(repository, self._location(response, url)))
        raise registry_error("POST", url, response.status, response.body, f"mounting {digest.short} into {self.name}/{repository}")

    async def cancel_upload(self, session: UploadSession) -> None:
        """Best-effort ``DELETE`` of an upload session we abandon (errors are logged only)."""
        try:
            with trio.move_on_after(10) as scope:
                scope.shield = True
                await self._exchange(
                    "upload_delete",
                    "DELETE",
                    session.location,
                    scopes=self._scopes(session.repository, push=True),
                    ok=(204, 202, 200, 404),
                )
        except OcyncError as exc:
            log.debug("abandoning upload %r: %s", session, exc)

    def _location(self, response: Response, request_url: str) -> str:
        return location_url(request_url, response.headers.get("location"), response.status)

    @asynccontextmanager
    async def open_blob(self, repository: str, digest: Digest) -> AsyncIterator[BlobStream]:
        """GET a blob as a stream (redirects to a storage host followed without credentials)."""
        url = self.url(f"{repository}/blobs/{digest}")
        response = await self._exchange(
            "blob_get", "GET", url, scopes=self._scopes(repository), ok=(200,), stream=True, follow=True
        )
        if response.status != 200:
            raise registry_error("GET", url, response.status, response.body, f"blob {digest.short} in {self.name}/{repository}")
        raw = response.stream
        assert raw is not None
        kind = "blob_get" if Origin.of(response.url) == Origin.of(self.base_url) else "storage_get"
        try:
            yield BlobStream(
                raw, self.counters, kind, f"blob {digest} from {self.name}/{repository}",
                silence=self.silence, not_answering=functools.partial(self._not_answering, "GET", url),
            )
        finally:
            with trio.CancelScope(shield=True):
                await raw.aclose()

    async def send_stream(
        self,
        kind: str,
        method: str,
        url: str,
        repository: str,
        body: AsyncIterable[bytes],
        headers: Mapping[str, str],
        ok: Container[int],
    ) -> Response:
        """One request with a streamed (non-replayable) body, for blob uploads."""
        return await self._exchange(
            kind, method, url, scopes=self._scopes(repository, push=True), headers=headers, content=body, ok=ok
        )

    async def send(
        self,
        kind: str,
        method: str,
        url: str,
        repository: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Container[int] = (200,),
        push: bool = True,
    ) -> Response:
        """One request with a replayable body (retried on 5xx and connection errors)."""
        return await self._exchange(
            kind, method, url, scopes=self._scopes(repository, push=push), headers=headers, content=content, ok=ok
        )


__all__ = [
    "MAX_THROTTLE_RETRIES",
    "TIMEOUT_ATTEMPTS",
    "USER_AGENT",
    "BlobStream",
    "ClientSettings",
    "ClientStatistics",
    "HostSilence",
    "ManifestHead",
    "MountResult",
    "RegistryClient",
    "RequestLedger",
    "Response",
    "UploadSession",
    "digest_query",
    "parse_oci_errors",
    "registry_base_url",
    "registry_error",
]
