"""RegistryClient: the OCI distribution-spec API of one registry for one credential.

Every request goes through the principal's :class:`PrincipalController` (window + bucket) and
is counted once by kind, status and bytes (:mod:`requeststats`). The rules of one logical
request (throttle waits, token refresh, redirects kept off other origins' credentials, retries
with backoff) are the pure :mod:`exchange` machine; this module sends through the
:mod:`transport` and applies what the machine says.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Container, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlencode, urlsplit

import httpx
import trio

from ocync import __version__
from ocync.errors import (
    IntegrityError,
    ManifestError,
    NotAnswering,
    OcyncError,
    RegistryError,
    RequestTimeout,
    TransportError,
)
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.errorbody import MAX_ERROR_BODY, header_digest, parse_oci_errors, status_error
from ocync.oci.manifest import MAX_MANIFEST_SIZE, Descriptor, Manifest, parse_manifest
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController
from ocync.ratelimit.signals import budget_from_headers
from ocync.registry.auth import AuthSettings, Credential, TokenRequest, resolve_credential
from ocync.registry.authsession import AuthSession
from ocync.registry.exchange import (
    MAX_THROTTLE_RETRIES,
    TIMEOUT_ATTEMPTS,
    Deliver,
    Exchange,
    Fail,
    Follow,
    HostSilence,
    Reauthenticate,
    Retry,
    WaitThrottle,
)
from ocync.registry.neterrors import RedactedURLs, redact_url
from ocync.registry.origin import Origin
from ocync.registry.profiles import RegistryProfile, select_profile
from ocync.registry.requeststats import ClientStatistics, RequestLedger
from ocync.registry.transport import Reply, Transport, Transports
from ocync.registry.urls import check_url, digest_query, location_url, next_link, registry_base_url

log = logging.getLogger(__name__)
logging.getLogger("httpx").addFilter(RedactedURLs())

USER_AGENT = f"ocync/{__version__}"
# A hinted throttle wait this long is worth a warning (once per client): the run goes quiet.
LONG_THROTTLE_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Per-registry settings (config ``registries:`` entries or CLI flags)."""

    auth: AuthSettings = field(default_factory=AuthSettings)
    profile: str | None = None  # None: chosen by host (profiles.HOST_PROFILES)
    rate_limit: str | None = None  # overrides the profile's documented cap ("2000/60s")
    max_concurrent: int | None = None
    insecure: bool = False  # plain HTTP (or unverified TLS for an explicit https:// URL)
    rate_share: float | None = None
    attempts: int = 5  # tries per request / per blob transfer
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


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


@dataclass(slots=True)
class Response:
    """A response whose body was read (error bodies capped)."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    stream: Reply | None = None  # the open reply when asked to stream


def _not_json(what: str, response: Response) -> RegistryError:
    ctype = mt.base_type(response.headers.get("content-type", "")) or "no Content-Type"
    hint = " (is this a registry?)" if "html" in ctype else ""
    return RegistryError(f"{what}: the answer is not JSON ({ctype}){hint}", status=response.status)


def registry_error(method: str, url: str, status: int, body: bytes, what: str = "") -> RegistryError:
    """The error for a non-success response, of the right class, with one clear line."""
    return status_error(what or f"{method} {redact_url(url)}", status, body, method=method, url=redact_url(url))


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


class RegistryClient:
    """The distribution API of one registry for one credential. Use as an async context
    manager (opens the HTTP client, resolves credentials, picks the principal's controller)."""

    def __init__(
        self,
        registry: str,
        settings: ClientSettings | None = None,
        *,
        controllers: ControllerRegistry | None = None,
        controller: PrincipalController | None = None,
        credential: Credential | None = None,
        profile: RegistryProfile | None = None,
        transport: Transport | httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or ClientSettings()
        self.name, self.base_url = registry_base_url(registry, self.settings.insecure)
        self.host = urlsplit(self.base_url).netloc
        self.profile = profile or select_profile(self.name, self.settings.profile)
        self._controllers = controllers
        self._controller = controller
        self._credential = credential
        self._injected = transport
        self._transports: Transports | None = None
        self.auth = AuthSession(self.name, self._send_token_request)
        self._rng = random.Random(seed)
        # Unix seconds, to read an HTTP-date Retry-After and GitHub's epoch x-ratelimit-reset;
        # waits themselves run on trio's clock.
        self._wall_clock = wall_clock
        self.counters = RequestLedger()
        self._warned_throttle = False
        self.silence = HostSilence(TIMEOUT_ATTEMPTS)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> RegistryClient:
        if self._credential is None:
            self._credential = await resolve_credential(self.name, self.settings.auth)
        self.auth.credential = self._credential
        if self._controller is None:
            controllers = self._controllers or ControllerRegistry()
            cap_text = self.settings.rate_limit or self.profile.documented_cap
            self._controller = controllers.controller_for(
                self.principal,
                window_groups=self.profile.window_groups,
                cap=parse_rate(cap_text) if cap_text else None,
                max_concurrent=self.settings.max_concurrent or 50,
                rate_share=self.settings.rate_share,
                # the profile's figure yields to a lower cap the registry announces
                cap_source="configured" if self.settings.rate_limit else "documented",
            )
        s = self.settings
        self._transports = Transports.open(
            user_agent=USER_AGENT, verify=not s.insecure, connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout, injected=self._injected,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._transports is not None:
            transports, self._transports = self._transports, None
            await transports.aclose()

    @property
    def credential(self) -> Credential:
        return self.auth.credential

    @property
    def principal(self) -> str:
        """``host|identity``: the key of the shared rate controller (no secrets)."""
        return f"{self.host}|{self.credential.identity}"

    @property
    def controller(self) -> PrincipalController:
        if self._controller is None:
            raise RuntimeError("RegistryClient used outside 'async with'")
        return self._controller

    def statistics(self) -> ClientStatistics:
        return self.counters.statistics(self.auth.tokens.fetched)

    def __repr__(self) -> str:
        s = self.counters.statistics()
        return f"<RegistryClient {self.base_url} profile={self.profile.name} principal={self.principal!r} requests={s.requests}>"

    def _not_answering(self, method: str, url: str) -> NotAnswering:
        return self.silence.not_answering(self.host, self.settings.read_timeout, method, url)

    def want_push(self, repository: str) -> None:
        """Ask for pull,push tokens for ``repository`` from now on (saves a token request)."""
        self.auth.want_push(repository)

    def url(self, path: str) -> str:
        return f"{self.base_url}/v2/{path}"

    # -- the request core --------------------------------------------------------------------

    def _scopes(self, repository: str | None, push: bool = False, mount_from: str | None = None) -> tuple[str, ...]:
        return self.auth.scopes(repository, push, mount_from)

    async def _send_token_request(self, request: TokenRequest) -> tuple[int, bytes]:
        response = await self._exchange(
            "token", request.method, request.url, headers=dict(request.headers), content=request.form,
            authenticate=False, ok=(200,),
        )
        return response.status, response.body

    def _note_throttle(self, reason: str, retry_after: float | None) -> None:
        """Say why a run went quiet: every throttle at -v, a long wait once as a warning."""
        wait = f"retry after {retry_after:g} s" if retry_after is not None else "backing off"
        if retry_after is not None and retry_after >= LONG_THROTTLE_WAIT and not self._warned_throttle:
            self._warned_throttle = True
            log.warning("%s is throttling us (%s); waiting as told (%s)", self.host, reason, wait)
        else:
            log.info("%s throttled a request (%s); %s", self.host, reason, wait)

    async def _exchange(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        ok: Container[int] = (200,),
        authenticate: bool = True,
        stream: bool = False,
        follow: bool = False,
        max_body: int = MAX_ERROR_BODY,
    ) -> Response:
        """One logical request with throttle waits, token refresh, redirects and retries.

        With ``stream`` a successful response is returned unread (``Response.stream``, to be
        closed by the caller); blob bodies travel over the data plane. Statuses in ``ok``
        have their body read up to ``max_body`` (else MAX_ERROR_BODY); others return too
        (the caller decides), except 5xx and throttles, which are retried first."""
        check_url(url)
        ex = Exchange(
            kind, method, url, base_url=self.base_url, replayable=content is None or isinstance(content, bytes),
            attempts=self.settings.attempts, ok=ok, follow=follow, authenticate=authenticate,
            silence=self.silence, read_timeout=self.settings.read_timeout, rng=self._rng,
        )
        while True:
            response, action = await self._attempt(ex, scopes, headers, content, stream, max_body)
            match action:
                case Deliver():
                    assert response is not None
                    return response
                case Retry(delay):
                    self.counters.retries += 1
                    await trio.sleep(delay)
                case Reauthenticate(stale, error):
                    if stale is not None:
                        await self.auth.token_for(scopes, stale=stale)
                    if error is not None:
                        raise error
                case WaitThrottle(signal, throttles, error):
                    self._note_throttle(signal.reason, signal.retry_after)
                    await self.controller.wait_after_throttle(signal, throttles)
                    if error is not None:
                        raise error
                case Follow(next_url):
                    if response is not None and response.stream is not None:
                        await response.stream.aclose()
                    check_url(next_url)
                case Fail(error, cause):
                    if ex.signal is not None:  # throttled too often
                        self._note_throttle(ex.signal.reason, ex.signal.retry_after)
                    raise error from cause

    async def _attempt(
        self,
        ex: Exchange,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None,
        content: bytes | AsyncIterable[bytes] | None,
        stream: bool,
        max_body: int,
    ) -> tuple[Response | None, Deliver | Retry | Reauthenticate | Follow | WaitThrottle | Fail]:
        """Send once under a permit, count it once, and ask the exchange what comes next."""
        method, url, kind = ex.method, ex.url, ex.kind
        refused = ex.refusal()
        if refused is not None:
            raise refused
        req_headers = dict(headers or {})
        sent_token: str | None = None
        if ex.authenticate and ex.same_origin:
            auth, sent_token = await self.auth.header(scopes)
            if auth is not None:
                req_headers["Authorization"] = auth
        body = content if isinstance(content, bytes) or content is None else _CountedChunks(content, self.counters, kind)
        status: int | None = None
        received = b""
        async with self.controller.permit(kind) as permit:
            refused = ex.refusal()  # the wait for a permit may have been long
            if refused is not None:
                raise refused
            try:
                reply = await self._transports_().choose(body, stream=stream).request(method, url, req_headers, body)
                status = reply.status
                ex.silence.answered()
                keep_open = stream and status in ex.ok
                if not keep_open:
                    try:
                        cap = max_body if status in ex.ok else MAX_ERROR_BODY
                        received = await self._read_capped(reply, cap, what=f"{method} {redact_url(url)}")
                    finally:
                        await reply.aclose()
            except TransportError as exc:
                self.counters.transport_errors += 1
                return None, ex.on_transport_error(exc)
            finally:  # every request counted once, answered or not
                self.counters.record(method, kind, status, len(received), len(content) if isinstance(content, bytes) else 0)
            learned = status == 401 and ex.authenticate and ex.same_origin and self.auth.learn_challenge(reply.headers)
            now = self._wall_clock()
            action = ex.on_response(status, reply.headers, received, sent_token=sent_token, learned=learned,
                                    bearer=self.auth.bearer, now=now)
            if ex.signal is not None:
                permit.throttled(ex.signal)
                self.counters.throttled += 1
            elif status < 400:
                permit.succeeded()
            budget = budget_from_headers(reply.headers, now=now)
            if budget is not None:
                self.controller.observe_budget(*budget)
        return Response(status, reply.headers, received, reply.url, reply if keep_open else None), action

    def _transports_(self) -> Transports:
        if self._transports is None:
            raise RuntimeError("RegistryClient used outside 'async with'")
        return self._transports

    async def _read_capped(self, response: Reply, cap: int, what: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap and cap >= MAX_MANIFEST_SIZE:
            raise ManifestError(f"{what}: {declared} bytes exceeds the {cap} byte limit")
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await response.read_some()
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                if cap >= MAX_MANIFEST_SIZE:
                    raise ManifestError(f"{what}: body exceeds the {cap} byte limit")
                break  # error bodies: keep the head only
            parts.append(chunk)
        return b"".join(parts)

    # -- API: basics -------------------------------------------------------------------------

    async def ping(self) -> bool:
        """``GET /v2/``: True if the registry answers (200, or 401 which teaches the challenge)."""
        response = await self._exchange("ping", "GET", f"{self.base_url}/v2/", ok=(200,), authenticate=False)
        if response.status == 401:
            self.auth.learn_challenge(response.headers)
            return True
        return response.status == 200

    async def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """All tags, following ``Link: <...>; rel="next"`` pages (distribution-spec)."""
        n = page_size or self.profile.tags_page_size
        url = self.url(f"{repository}/tags/list") + (f"?n={n}" if n else "")
        tags: list[str] = []
        known: set[str] = set()
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            response = await self._exchange(
                "tags_list", "GET", url, scopes=self._scopes(repository), ok=(200,), max_body=64 * 1024 * 1024
            )
            what = f"listing tags of {self.name}/{repository}"
            if response.status != 200:
                raise registry_error("GET", url, response.status, response.body, what)
            try:
                doc = json.loads(response.body)
            except (ValueError, RecursionError):
                raise _not_json(what, response) from None
            page = doc.get("tags") if isinstance(doc, dict) else None
            found = [t for t in page or [] if isinstance(t, str) and t not in known]
            known.update(found)
            tags += found
            # A page with nothing new that still points further is a Link loop with fresh
            # URLs each time (a broken registry): stop rather than page forever.
            url = (next_link(response.headers, url) or "") if found else ""
        return tags

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

    async def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """OCI 1.1 referrers of ``digest``; None when the API is unsupported (then use the
        ``sha256-<hex>`` tag fallback)."""
        if self.profile.referrers_api is False:
            return None
        url = self.url(f"{repository}/referrers/{digest}")
        if artifact_type:
            url += "?" + urlencode({"artifactType": artifact_type})
        out: list[Descriptor] = []
        known: set[Digest] = set()
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            response = await self._exchange(
                "referrers", "GET", url, scopes=self._scopes(repository), ok=(200,), max_body=MAX_MANIFEST_SIZE
            )
            if response.status in (404, 405, 400) and not out:
                return None
            if response.status != 200:
                raise registry_error("GET", url, response.status, response.body, f"referrers of {self.name}/{repository}@{digest.short}")
            if not mt.is_index(response.headers.get("content-type", "")):
                return None
            try:
                index = parse_manifest(response.body, mt.OCI_INDEX)
            except ManifestError:
                return None
            fresh = [d for d in index.manifests if d.digest not in known]
            known.update(d.digest for d in fresh)
            out += [d for d in fresh if artifact_type is None or d.artifact_type == artifact_type]
            url = (next_link(response.headers, url) or "") if fresh else ""  # nothing new: a Link loop
        return out

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


class BlobStream:
    """The body of a blob GET: ``content_length`` and the chunks as received
    (``async for chunk in stream.chunks()``; an iterator object, not a generator)."""

    def __init__(
        self, response: Reply, counters: RequestLedger, kind: str, what: str, *,
        silence: HostSilence | None = None, not_answering: Callable[[], NotAnswering] | None = None,
    ) -> None:
        self._response = response
        self._counters = counters
        self._kind = kind
        self.what = what
        self._silence = silence
        self._not_answering = not_answering
        length = response.headers.get("content-length", "")
        self.content_length = int(length) if length.isdigit() else None

    def chunks(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._response.read_some()
        except TransportError as exc:
            self._counters.transport_errors += 1
            silence = self._silence
            if silence is not None and isinstance(exc, RequestTimeout) and silence.timed_out() and self._not_answering:
                raise self._not_answering() from exc
            raise
        if self._silence is not None:
            self._silence.answered()
        if not chunk:
            raise StopAsyncIteration
        self._counters.add_bytes(self._kind, len(chunk))
        return chunk


class _CountedChunks:
    """Counts the bytes of an upload body as they go out."""

    def __init__(self, content: AsyncIterable[bytes], counters: RequestLedger, kind: str) -> None:
        self._inner = aiter(content)
        self._counters = counters
        self._kind = kind

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._inner)
        self._counters.add_bytes(self._kind, 0, len(chunk))
        return chunk


class ClientPool:
    """Builds clients that share one :class:`ControllerRegistry`: the same host and
    credential identity get the same controller (and so one rate budget) everywhere.

    ``async with ClientPool() as pool: client = await pool.client("ghcr.io", settings)``;
    clients are cached per (registry, settings) and closed when the pool exits."""

    def __init__(self, controllers: ControllerRegistry | None = None, *, seed: int | None = None) -> None:
        self.controllers = controllers or ControllerRegistry()
        self._clients: dict[tuple[str, ClientSettings], RegistryClient] = {}
        self._seed = seed
        self._lock = trio.Lock()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def client(self, registry: str, settings: ClientSettings | None = None) -> RegistryClient:
        settings = settings or ClientSettings()
        key = (registry, settings)
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = RegistryClient(registry, settings, controllers=self.controllers, seed=self._seed)
                await client.__aenter__()
                self._clients[key] = client
            return client

    def statistics(self) -> ClientStatistics:
        return sum((c.statistics() for c in self._clients.values()), ClientStatistics())

    def __repr__(self) -> str:
        return f"<ClientPool clients={len(self._clients)} {self.controllers!r}>"


__all__ = [
    "MAX_THROTTLE_RETRIES",
    "TIMEOUT_ATTEMPTS",
    "USER_AGENT",
    "BlobStream",
    "ClientPool",
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
