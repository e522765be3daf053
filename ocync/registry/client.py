"""RegistryClient: the OCI distribution-spec API over one ``httpx.AsyncClient`` per registry.

Every request goes through the principal's :class:`PrincipalController` (window + bucket) and
is counted by kind, status and bytes. Redirects are followed here, not by httpx, so that
credentials never leave the registry's origin (GHCR answers blob GETs with a 307 to a storage
host). GET/HEAD and requests with replayable bodies are retried on 5xx, connection errors and
truncated bodies with exponential backoff and jitter; throttles wait as the controller says
and are retried without counting as failures.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Container, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, cast
from urllib.parse import quote, urlencode, urlsplit

import httpx
import trio

from ocync import __version__
from ocync.errors import (
    IntegrityError,
    ManifestError,
    NotAnswering,
    NotFound,
    OCIErrorEntry,
    OcyncError,
    ReferenceError_,
    RegistryError,
    Throttled,
    TransportError,
    Unauthorized,
)
from ocync.oci import mediatypes as mt
from ocync.oci.challenge import Challenge, find_challenge, parse_www_authenticate
from ocync.oci.digest import Digest
from ocync.oci.manifest import (
    MAX_MANIFEST_SIZE,
    Descriptor,
    Manifest,
    parse_manifest,
    verify_manifest,
)
from ocync.oci.reference import DOCKER_HUB, is_loopback_host, normalise_registry
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController
from ocync.ratelimit.signals import ThrottleSignal, budget_from_headers, throttle_signal
from ocync.registry.auth import (
    ANONYMOUS,
    AuthSettings,
    Credential,
    TokenCache,
    parse_token_response,
    repository_scope,
    resolve_credential,
    token_request,
)
from ocync.registry.neterrors import RedactedURLs, is_timeout, redact_url, transport_error
from ocync.registry.profiles import RegistryProfile, select_profile
from ocync.registry.wire import WirePool

log = logging.getLogger(__name__)
logging.getLogger("httpx").addFilter(RedactedURLs())

USER_AGENT = f"ocync/{__version__}"
# Error bodies are read up to this size (OCI error JSON is small; HTML error pages are not).
MAX_ERROR_BODY = 64 * 1024
# A throttled request is retried this many times before Throttled is raised.
MAX_THROTTLE_RETRIES = 30
MAX_REDIRECTS = 5
# Backoff for 5xx / connection errors: 0.2 s doubling to 10 s, "full jitter" half of it.
RETRY_BASE = 0.2
RETRY_MAX = 10.0
# A hinted throttle wait this long is worth a warning (once per client): the run goes quiet.
LONG_THROTTLE_WAIT = 5.0
# Attempts for a request that timed out (a hung registry should fail in minutes, not ten).
TIMEOUT_ATTEMPTS = 2
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
WIRE_BYTES_THRESHOLD = 256 * 1024


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


@dataclass(slots=True)
class HostSilence:
    """Timeouts in a row from one registry with nothing received in between (pure).

    A frozen host (a stopped process; a link that dropped without a FIN or RST) answers no
    request at all: every request, retry and image that needs it would wait its own timeout,
    for as long as there are images. After ``limit`` timeouts in a row the host is given up
    for the run, so a run pays about ``limit`` timeouts per frozen host."""

    limit: int
    in_a_row: int = 0
    given_up: bool = False

    def answered(self) -> None:
        """Bytes arrived (a response head or a piece of a body)."""
        if not self.given_up:
            self.in_a_row = 0

    def timed_out(self) -> bool:
        """One more request got nothing in time; True once the host is given up."""
        if not self.given_up:
            self.in_a_row += 1
            self.given_up = self.in_a_row >= self.limit
        return self.given_up


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


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """Request counters of one client (or a sum of several, see :meth:`merge`)."""

    requests: int = 0
    by_kind: Mapping[str, int] = field(default_factory=dict)
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_kind_status: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    bytes_in_by_kind: Mapping[str, int] = field(default_factory=dict)
    bytes_out_by_kind: Mapping[str, int] = field(default_factory=dict)
    throttled: int = 0
    retries: int = 0
    transport_errors: int = 0
    tokens_fetched: int = 0
    by_method: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_method": dict(self.by_method),
            "by_kind": dict(self.by_kind),
            "by_status": dict(self.by_status),
            "by_kind_status": {k: dict(v) for k, v in self.by_kind_status.items()},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bytes_in_by_kind": dict(self.bytes_in_by_kind),
            "bytes_out_by_kind": dict(self.bytes_out_by_kind),
            "throttled": self.throttled,
            "retries": self.retries,
            "transport_errors": self.transport_errors,
            "tokens_fetched": self.tokens_fetched,
        }

    @classmethod
    def merge(cls, stats: Sequence[ClientStatistics]) -> ClientStatistics:
        by_kind: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        by_method: Counter[str] = Counter()
        bin_k: Counter[str] = Counter()
        bout_k: Counter[str] = Counter()
        by_ks: dict[str, Counter[str]] = {}
        for s in stats:
            by_kind.update(s.by_kind)
            by_status.update(s.by_status)
            by_method.update(s.by_method)
            bin_k.update(s.bytes_in_by_kind)
            bout_k.update(s.bytes_out_by_kind)
            for kind, statuses in s.by_kind_status.items():
                by_ks.setdefault(kind, Counter()).update(statuses)
        return cls(
            requests=sum(s.requests for s in stats),
            by_kind=dict(by_kind),
            by_status=dict(by_status),
            by_kind_status={k: dict(v) for k, v in by_ks.items()},
            bytes_in=sum(s.bytes_in for s in stats),
            bytes_out=sum(s.bytes_out for s in stats),
            bytes_in_by_kind=dict(bin_k),
            bytes_out_by_kind=dict(bout_k),
            throttled=sum(s.throttled for s in stats),
            retries=sum(s.retries for s in stats),
            transport_errors=sum(s.transport_errors for s in stats),
            tokens_fetched=sum(s.tokens_fetched for s in stats),
            by_method=dict(by_method),
        )


class RequestCounters:
    """Counts every request: (kind, status) and bytes in/out per kind."""

    def __init__(self) -> None:
        self.by_kind_status: dict[str, Counter[str]] = {}
        self.by_method: Counter[str] = Counter()
        self.bytes_in: Counter[str] = Counter()
        self.bytes_out: Counter[str] = Counter()
        self.throttled = 0
        self.retries = 0
        self.transport_errors = 0

    def record(self, method: str, kind: str, status: int | None, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.by_kind_status.setdefault(kind, Counter())[str(status) if status else "error"] += 1
        self.by_method[method] += 1
        self.add_bytes(kind, bytes_in, bytes_out)

    def add_bytes(self, kind: str, bytes_in: int = 0, bytes_out: int = 0) -> None:
        if bytes_in:
            self.bytes_in[kind] += bytes_in
        if bytes_out:
            self.bytes_out[kind] += bytes_out

    def statistics(self, tokens_fetched: int = 0) -> ClientStatistics:
        by_kind = {k: sum(v.values()) for k, v in self.by_kind_status.items()}
        by_status: Counter[str] = Counter()
        for statuses in self.by_kind_status.values():
            by_status.update(statuses)
        return ClientStatistics(
            requests=sum(by_kind.values()),
            by_kind=by_kind,
            by_status=dict(by_status),
            by_kind_status={k: dict(v) for k, v in self.by_kind_status.items()},
            bytes_in=sum(self.bytes_in.values()),
            bytes_out=sum(self.bytes_out.values()),
            bytes_in_by_kind=dict(self.bytes_in),
            bytes_out_by_kind=dict(self.bytes_out),
            throttled=self.throttled,
            retries=self.retries,
            transport_errors=self.transport_errors,
            tokens_fetched=tokens_fetched,
            by_method=dict(self.by_method),
        )


@dataclass(slots=True)
class Response:
    """A response whose body was read (error bodies capped)."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    stream: Reply | None = None  # the open reply when asked to stream


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def parse_oci_errors(body: bytes) -> tuple[OCIErrorEntry, ...]:
    """``{"errors":[{"code","message"}]}`` (distribution-spec "Error Codes"), size-capped."""
    if not body or len(body) > MAX_ERROR_BODY:
        return ()
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return ()
    entries = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return ()
    out = []
    for entry in entries[:20]:
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            message = entry.get("message")
            out.append(OCIErrorEntry(entry["code"][:64], message[:300] if isinstance(message, str) else ""))
    return tuple(out)


# What a bare status means when the answer carries no OCI error body (HEAD answers never do).
_STATUS_MEANING = {
    400: "bad request",
    401: "authentication required",
    403: "access denied",
    404: "not found",
    405: "not supported by this registry",
    413: "too large for this registry",
    500: "registry-side error",
    502: "bad gateway",
    503: "registry unavailable",
    504: "gateway timeout",
}


def header_digest(value: str, what: str) -> Digest:
    """A digest a registry sent in a header; a malformed one is the registry's fault
    (RegistryError), not the user's (ReferenceError_, exit 3)."""
    try:
        return Digest.parse(value.strip())
    except ReferenceError_:
        raise RegistryError(f"{what}: the registry sent an invalid Docker-Content-Digest {value[:80]!r}") from None


def _not_json(what: str, response: Response) -> RegistryError:
    ctype = mt.base_type(response.headers.get("content-type", "")) or "no Content-Type"
    hint = " (is this a registry?)" if "html" in ctype else ""
    return RegistryError(f"{what}: the answer is not JSON ({ctype}){hint}", status=response.status)


def registry_error(method: str, url: str, status: int, body: bytes, what: str = "") -> RegistryError:
    """The error for a non-success response, of the right class, with one clear line."""
    errors = parse_oci_errors(body)
    detail = "; ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors)
    detail = detail or _STATUS_MEANING.get(status, "")
    subject = what or f"{method} {redact_url(url)}"
    message = f"{subject}: HTTP {status}" + (f" ({detail})" if detail else "")
    cls: type[RegistryError] = RegistryError
    if status in (401, 403):
        cls = Unauthorized
    elif status == 404:
        cls = NotFound
    elif status == 429:
        cls = Throttled
    return cls(message, status=status, method=method, url=redact_url(url), errors=errors)


class Reply(Protocol):
    """A response whose head arrived: httpx's (control plane) or the wire's (blob bodies)."""

    status: int
    headers: httpx.Headers
    url: str

    async def read_some(self) -> bytes: ...

    async def aclose(self) -> None: ...


class _HttpxReply:
    """httpx.Response behind the :class:`Reply` interface."""

    def __init__(self, response: httpx.Response, timeouts: tuple[float, float] | None = None) -> None:
        self._response = response
        self._timeouts = timeouts
        self.status = response.status_code
        self.headers = response.headers
        self.url = str(response.url)
        self._iter: AsyncIterator[bytes] | None = None

    async def read_some(self) -> bytes:
        if self._iter is None:
            self._iter = self._response.aiter_bytes()
        try:
            return await anext(self._iter)
        except StopAsyncIteration:
            return b""
        except (httpx.HTTPError, httpx.StreamError, OSError) as exc:
            raise transport_error("GET", self.url, exc, timeouts=self._timeouts, during="(body truncated)") from exc

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._response.aclose()


class _StaleToken(TransportError):
    """A streamed request got 401: the token was refreshed; the transfer must restart."""


def registry_base_url(registry: str, insecure: bool = False) -> tuple[str, str]:
    """``registry`` (name, ``host:port`` or URL) -> (registry name, API base URL).

    Loopback hosts use plain HTTP, as Docker does; others HTTPS unless ``insecure``."""
    text = registry.strip().rstrip("/")
    if "://" in text:
        scheme, _, host = text.partition("://")
        host = host.split("/", 1)[0]
        name = normalise_registry(host)
        return name, f"{scheme.lower()}://{host}"
    name = normalise_registry(text)
    api_host = "registry-1.docker.io" if name == DOCKER_HUB else name
    scheme = "http" if insecure or is_loopback_host(api_host) else "https"
    return name, f"{scheme}://{api_host}"


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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._wire: WirePool | None = None
        self._tokens = TokenCache()
        self._token_locks: dict[tuple[str, ...], trio.Lock] = {}
        self._challenge: Challenge | None = None
        self._push_repos: set[str] = set()
        self._extra_pull: dict[str, set[str]] = {}
        self._rng = random.Random(seed)
        # Unix seconds, to read an HTTP-date Retry-After and GitHub's epoch x-ratelimit-reset;
        # waits themselves run on trio's clock.
        self._wall_clock = wall_clock
        self.counters = RequestCounters()
        self._warned_throttle = False
        self.silence = HostSilence(TIMEOUT_ATTEMPTS)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> RegistryClient:
        if self._credential is None:
            self._credential = await resolve_credential(self.name, self.settings.auth)
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
        self._http = httpx.AsyncClient(
            transport=self._transport,
            # identity: manifest bytes must arrive exactly as stored (their digest).
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(connect=s.connect_timeout, read=s.read_timeout, write=s.read_timeout, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30),
            follow_redirects=False,
            verify=not s.insecure,
            trust_env=False,
        )
        if self._transport is None:  # a scripted transport (tests) carries everything
            self._wire = WirePool(
                verify=not s.insecure,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                user_agent=USER_AGENT,
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            with trio.CancelScope(shield=True):
                await http.aclose()
        if self._wire is not None:
            wire, self._wire = self._wire, None
            await wire.aclose()

    @property
    def credential(self) -> Credential:
        return self._credential or ANONYMOUS

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
        return self.counters.statistics(self._tokens.fetched)

    def __repr__(self) -> str:
        s = self.counters.statistics()
        return f"<RegistryClient {self.base_url} profile={self.profile.name} principal={self.principal!r} requests={s.requests}>"

    @property
    def _timeouts(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    def _not_answering(self, method: str, url: str) -> NotAnswering:
        path = urlsplit(redact_url(url)).path or "/"
        return NotAnswering(
            f"{self.host}: stopped answering (nothing received for {self.settings.read_timeout:g} s, "
            f"{self.silence.in_a_row} times in a row); given up for this run ({method} {path})"
        )

    def _check_answering(self, method: str, url: str) -> None:
        if self.silence.given_up:
            raise self._not_answering(method, url)

    def want_push(self, repository: str) -> None:
        """Ask for pull,push tokens for ``repository`` from now on (saves a token request)."""
        self._push_repos.add(repository)

    def url(self, path: str) -> str:
        return f"{self.base_url}/v2/{path}"

    # -- the request core --------------------------------------------------------------------

    def _scopes(self, repository: str | None, push: bool = False, mount_from: str | None = None) -> tuple[str, ...]:
        if repository is None:
            return ()
        scopes = [repository_scope(repository, push or repository in self._push_repos)]
        if mount_from is not None and mount_from != repository:
            scopes.append(repository_scope(mount_from, False))
        return tuple(scopes)

    async def _auth_header(self, url: str, scopes: tuple[str, ...]) -> str | None:
        if _origin(url) != _origin(self.base_url):
            return None  # credentials go only to the registry's origin (and its realm)
        cred = self.credential
        if cred.kind == "static_token":
            return f"Bearer {cred.secret}"
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return cred.basic_header()
        if challenge.scheme == "bearer":
            token = await self._token_for(scopes)
            return f"Bearer {token}"
        return None

    async def _token_for(self, scopes: tuple[str, ...], stale: str | None = None) -> str:
        now = trio.current_time()
        cached = self._tokens.get(scopes, now)
        if cached is not None and cached != stale:
            return cached
        lock = self._token_locks.setdefault(scopes, trio.Lock())
        async with lock:
            cached = self._tokens.get(scopes, trio.current_time())
            if cached is not None and cached != stale:
                return cached
            if stale is not None:
                self._tokens.invalidate(stale)
            assert self._challenge is not None
            failed = f"authentication to {self.name} failed ({self.credential.source})"
            try:
                request = token_request(self._challenge, scopes, self.credential)
            except Unauthorized as exc:
                raise Unauthorized(f"{failed}: {exc}") from None
            response = await self._exchange(
                "token",
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.form,
                authenticate=False,
                ok=(200,),
            )
            if response.status != 200:
                raise Unauthorized(
                    f"{failed}: token endpoint answered HTTP {response.status}",
                    status=response.status,
                    method=request.method,
                    url=redact_url(request.url),
                    errors=parse_oci_errors(response.body),
                )
            try:
                token, lifetime = parse_token_response(response.body)
            except Unauthorized as exc:
                raise Unauthorized(f"{failed}: {exc} ({redact_url(request.url)})") from None
            self._tokens.put(scopes, token, lifetime, trio.current_time())
            return token

    def _learn_challenge(self, headers: httpx.Headers) -> bool:
        values = headers.get_list("www-authenticate")
        challenges: list[Challenge] = []
        for value in values:
            try:
                challenges += parse_www_authenticate(value)
            except RegistryError as exc:
                log.debug("%s", exc)
        chosen = find_challenge(challenges, "bearer") or find_challenge(challenges, "basic")
        if chosen is None:
            return False
        if chosen.scheme == "basic" and self.credential.kind != "basic":
            return False
        self._challenge = chosen
        return True

    def _note_throttle(self, reason: str, retry_after: float | None) -> None:
        """Say why a run went quiet: every throttle at -v, a long wait once as a warning."""
        wait = f"retry after {retry_after:g} s" if retry_after is not None else "backing off"
        if retry_after is not None and retry_after >= LONG_THROTTLE_WAIT and not self._warned_throttle:
            self._warned_throttle = True
            log.warning("%s is throttling us (%s); waiting as told (%s)", self.host, reason, wait)
        else:
            log.info("%s throttled a request (%s); %s", self.host, reason, wait)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(RETRY_MAX, RETRY_BASE * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rng.random() * ceiling / 2

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
        closed by the caller); blob bodies travel over the wire pool. Statuses in ``ok``
        have their body read up to ``max_body`` (else MAX_ERROR_BODY); others return too
        (the caller decides), except 5xx and throttles, which are retried first."""
        http = self._http
        if http is None:
            raise RuntimeError("RegistryClient used outside 'async with'")
        replayable = content is None or isinstance(content, bytes)
        _check_url(url)
        attempt = 0
        throttles = 0
        refreshed = False
        challenged = False
        redirects = 0
        while True:
            self._check_answering(method, url)
            req_headers = dict(headers or {})
            sent_token: str | None = None
            if authenticate:
                auth = await self._auth_header(url, scopes)
                if auth is not None:
                    req_headers["Authorization"] = auth
                    if auth.startswith("Bearer ") and self.credential.kind != "static_token":
                        sent_token = auth[7:]
            body_out = len(content) if isinstance(content, bytes) else 0
            request_content = content if isinstance(content, bytes) or content is None else self._count_out(kind, content)
            error: OcyncError | None = None
            timed_out = False
            response: Reply | None = None
            signal = None
            # Blob bodies go over the wire; so do big byte bodies (httpcore's write loop
            # re-slices a bytes body per send: quadratic for tens of MiB).
            big = isinstance(content, bytes) and len(content) > WIRE_BYTES_THRESHOLD
            use_wire = self._wire is not None and (stream or not replayable or big)
            async with self.controller.permit(kind) as permit:
                self._check_answering(method, url)  # the wait for a permit may have been long
                try:
                    if use_wire:
                        assert self._wire is not None
                        response = await self._wire.request(method, url, req_headers, request_content)
                    else:
                        request = http.build_request(method, url, headers=req_headers, content=request_content)
                        response = _HttpxReply(await http.send(request, stream=True), self._timeouts)
                except (httpx.HTTPError, httpx.StreamError, OSError, TransportError) as exc:
                    self.counters.record(method, kind, None, 0, body_out)
                    self.counters.transport_errors += 1
                    timed_out = is_timeout(exc)
                    if isinstance(exc, TransportError):
                        error = exc
                    else:
                        error = transport_error(method, url, exc, timeouts=self._timeouts)
                        error.__cause__ = exc
                else:
                    self.silence.answered()
                    status = response.status
                    body = b""
                    keep_open = stream and status in ok
                    if not keep_open:
                        try:
                            cap = max_body if status in ok else MAX_ERROR_BODY
                            body = await self._read_capped(response, cap, what=f"{method} {redact_url(url)}")
                        except TransportError as exc:
                            self.counters.record(method, kind, status, 0, body_out)
                            self.counters.transport_errors += 1
                            timed_out = is_timeout(exc)
                            error = exc
                        except ManifestError:
                            self.counters.record(method, kind, status, 0, body_out)
                            raise
                        finally:
                            await response.aclose()
                    if error is None:
                        self.counters.record(method, kind, status, len(body), body_out)
                        now = self._wall_clock()
                        signal = _throttle_signal(status, response.headers, body, now)
                        if signal is not None:
                            permit.throttled(signal)
                            self.counters.throttled += 1
                        elif status < 400:
                            permit.succeeded()
                        budget = budget_from_headers(response.headers, now=now)
                        if budget is not None:
                            self.controller.observe_budget(*budget)
            if error is not None:
                given_up = timed_out and self.silence.timed_out()
                attempt += 1
                # A host that did not answer in time rarely answers the next time: one retry
                # (so a hung server costs 2 timeouts, not `attempts` of them).
                limit = min(self.settings.attempts, TIMEOUT_ATTEMPTS) if timed_out else self.settings.attempts
                if given_up:
                    # not temporary: the callers' own restarts would only wait again
                    if not replayable or attempt >= limit:
                        raise NotAnswering(str(error)) from error
                    raise self._not_answering(method, url) from error
                if not replayable or attempt >= limit:
                    raise error
                self.counters.retries += 1
                await trio.sleep(self._backoff(attempt))
                continue
            assert response is not None
            status = response.status
            if signal is not None:
                throttles += 1
                self._note_throttle(signal.reason, signal.retry_after)
                if not replayable and throttles <= MAX_THROTTLE_RETRIES:
                    # the body is gone: wait here, the caller restarts the transfer
                    await self.controller.wait_after_throttle(signal, throttles)
                if not replayable or throttles > MAX_THROTTLE_RETRIES:
                    raise Throttled(
                        f"{redact_url(url)}: still throttled after {throttles} waits ({signal.reason}) ({method})",
                        retry_after=signal.retry_after,
                        status=status,
                        method=method,
                        url=redact_url(url),
                    )
                await self.controller.wait_after_throttle(signal, throttles)
                continue
            if status == 401 and authenticate and _origin(url) == _origin(self.base_url):
                learned = self._learn_challenge(response.headers)
                retry_auth = False
                if sent_token is None and learned and not challenged:
                    challenged = True  # first contact: the challenge says where tokens come from
                    retry_auth = True
                elif sent_token is not None and not refreshed:
                    refreshed = True  # the token expired or lacks a scope: refresh once
                    retry_auth = True
                    if self._challenge is not None and self._challenge.scheme == "bearer":
                        await self._token_for(scopes, stale=sent_token)
                if retry_auth:
                    if not replayable:
                        raise _StaleToken(f"{method} {redact_url(url)}: token rejected mid-transfer; restarting")
                    continue
            if status >= 500 and status not in ok:
                attempt += 1
                if replayable and attempt < self.settings.attempts:
                    self.counters.retries += 1
                    await trio.sleep(self._backoff(attempt))
                    continue
            if follow and status in REDIRECT_STATUSES and "location" in response.headers:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{method} {redact_url(url)}: too many redirects", status=status)
                if stream:
                    await response.aclose()
                url = _join_url(url, response.headers["location"])
                _check_url(url)
                if kind == "blob_get" or _origin(url) != _origin(self.base_url):
                    kind = "storage_get"
                continue
            if stream and status in ok:
                return Response(status, response.headers, b"", response.url, response)
            return Response(status, response.headers, body, response.url)

    def _count_out(self, kind: str, content: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        return _CountedChunks(content, self.counters, kind)

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
            self._learn_challenge(response.headers)
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
            url = (_next_link(response.headers, url) or "") if found else ""
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
        """The manifest's bytes as stored (verified against the digest when known)."""
        url = self.url(f"{repository}/manifests/{reference}")
        what = self._manifest_what(repository, reference)
        attempt = 0
        while True:
            attempt += 1
            response = await self._exchange(
                "manifest_get",
                "GET",
                url,
                scopes=self._scopes(repository),
                headers={"Accept": mt.MANIFEST_ACCEPT_HEADER},
                ok=(200,),
                follow=True,
                max_body=MAX_MANIFEST_SIZE,
            )
            if response.status != 200:
                raise registry_error("GET", url, response.status, response.body, what)
            raw = response.body
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) != len(raw):
                if attempt < self.settings.attempts:
                    continue
                raise TransportError(f"{what}: body truncated ({len(raw)} of {declared} bytes)")
            content_type = response.headers.get("content-type", "")
            if "html" in mt.base_type(content_type):
                # A web server or login page, not a registry: say so rather than "digest mismatch".
                raise ManifestError(f"{what}: the registry answered {mt.base_type(content_type)}, not a manifest "
                                    f"(is {self.base_url} a registry?)")
            expected: Digest | None = None
            if ":" in reference:
                expected = Digest.parse(reference)
            claimed_text = response.headers.get("docker-content-digest")
            try:
                computed = Digest.of(raw, expected.algorithm if expected else "sha256")
                if expected is not None:
                    verify_manifest(raw, expected, what)
                if claimed_text:
                    verify_manifest(raw, header_digest(claimed_text, what), f"{what} (Docker-Content-Digest)")
            except IntegrityError:
                if attempt < self.settings.attempts:
                    self.counters.retries += 1
                    continue
                raise
            try:
                return parse_manifest(raw, content_type or None, computed)
            except ManifestError as exc:
                raise ManifestError(f"{what}: {str(exc).removeprefix(f'manifest {computed.short}: ')}") from None

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

    async def delete_manifest(self, repository: str, digest: Digest) -> bool:
        url = self.url(f"{repository}/manifests/{digest}")
        response = await self._exchange(
            "manifest_delete", "DELETE", url, scopes=self._scopes(repository, push=True), ok=(202, 200)
        )
        if response.status == 404:
            return False
        if response.status not in (200, 202):
            raise registry_error("DELETE", url, response.status, response.body)
        return True

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
            url = (_next_link(response.headers, url) or "") if fresh else ""  # nothing new: a Link loop
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
        location = response.headers.get("location")
        if not location:
            raise RegistryError(f"{redact_url(request_url)}: HTTP {response.status} without a Location header")
        url = _join_url(request_url, location) if "://" not in location else location
        _check_url(url)
        return url

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
        kind = "blob_get" if _origin(response.url) == _origin(self.base_url) else "storage_get"
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
        self, response: Reply, counters: RequestCounters, kind: str, what: str, *,
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
        self._read = response.read_some

    def chunks(self, *, views: bool = False) -> AsyncIterator[bytes]:
        """With ``views`` each chunk is a memoryview of one reusable buffer (the wire's relay),
        valid until the next one is asked for: for a consumer that is done with each in turn."""
        read_view = getattr(self._response, "read_view", None) if views else None
        if read_view is not None:
            self._read = cast(Any, read_view)  # memoryviews: bytes-like, like read_some's chunks
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._read()
        except TransportError as exc:
            self._counters.transport_errors += 1
            silence = self._silence
            if silence is not None and is_timeout(exc) and silence.timed_out() and self._not_answering:
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

    def __init__(self, content: AsyncIterable[bytes], counters: RequestCounters, kind: str) -> None:
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

    def clients(self) -> list[RegistryClient]:
        return list(self._clients.values())

    def statistics(self) -> ClientStatistics:
        return ClientStatistics.merge([c.statistics() for c in self._clients.values()])

    def __repr__(self) -> str:
        return f"<ClientPool clients={len(self._clients)} {self.controllers!r}>"


def _throttle_signal(status: int, headers: httpx.Headers, body: bytes, now: float) -> ThrottleSignal | None:
    """throttle_signal, with a body too deeply nested to parse read as no body at all."""
    try:
        return throttle_signal(status, headers, body, now=now)
    except RecursionError:
        return throttle_signal(status, headers, b"", now=now)


def _join_url(base: str, reference: str) -> str:
    try:
        return str(httpx.URL(base).join(reference))
    except httpx.InvalidURL as exc:
        raise RegistryError(f"{redact_url(base)}: the registry sent an invalid URL ({exc})") from None


def _check_url(url: str) -> None:
    """A URL a registry handed us (Location, Link) must be one we can request."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RegistryError(f"{redact_url(url)}: the registry sent an invalid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RegistryError(f"{redact_url(url)}: the registry sent a URL that is not http(s)://host/...")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise RegistryError(f"{redact_url(url)}: the registry sent a URL with port {parsed.port}")


def _next_link(headers: httpx.Headers, current: str) -> str | None:
    """The ``rel="next"`` target of a Link header (RFC 8288), resolved against ``current``."""
    for value in headers.get_list("link"):
        for part in value.split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if target.startswith("<") and target.endswith(">") and 'rel="next"' in params.replace(" ", "") or (
                target.startswith("<") and "rel=next" in params.replace(" ", "")
            ):
                return _join_url(current, target[1:-1])
    return None


def digest_query(location: str, digest: Digest) -> str:
    """``location`` with ``digest=`` appended to its query, everything else kept verbatim."""
    sep = "&" if urlsplit(location).query else ("" if location.endswith("?") else "?")
    return f"{location}{sep}digest={quote(str(digest), safe=':')}"


__all__ = [
    "USER_AGENT",
    "BlobStream",
    "ClientPool",
    "ClientSettings",
    "ClientStatistics",
    "ManifestHead",
    "MountResult",
    "RegistryClient",
    "RequestCounters",
    "Response",
    "UploadSession",
    "digest_query",
    "parse_oci_errors",
    "registry_base_url",
    "registry_error",
]
