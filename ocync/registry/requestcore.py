"""RequestCore: how a client sends one logical request. Every request goes through the
principal's :class:`PrincipalController` (window + bucket) and is counted once by kind,
status and bytes (:mod:`requeststats`); the rules (throttle waits, token refresh, redirects
kept off other origins' credentials, retries with backoff) are the pure :mod:`exchange`
machine, applied here over the :mod:`transport`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterable, Callable, Container, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx
import trio

from ocync import __version__
from ocync.errors import (
    ManifestError,
    NotAnswering,
    PullQuotaExhausted,
    RegistryError,
    TransportError,
)
from ocync.oci.errorbody import MAX_ERROR_BODY, status_error
from ocync.oci.manifest import MAX_MANIFEST_SIZE
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController
from ocync.ratelimit.pullquota import PullQuota
from ocync.ratelimit.signals import budget_from_headers, pull_quota_from_headers
from ocync.registry.authsession import AuthSession
from ocync.registry.bodystream import CountedChunks
from ocync.registry.credentials import Credential
from ocync.registry.dockerconfig import resolve_credential
from ocync.registry.exchange import (
    TIMEOUT_ATTEMPTS,
    Action,
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
from ocync.registry.profiles import RegistryProfile, select_profile
from ocync.registry.requeststats import ClientStatistics, RequestLedger
from ocync.registry.settings import ClientSettings
from ocync.registry.tokens import TokenRequest
from ocync.registry.transport import Reply, Transport, Transports
from ocync.registry.urls import check_url, registry_base_url

# The client's logger name, kept since the split: users and tests filter on it.
log = logging.getLogger("ocync.registry.client")
logging.getLogger("httpx").addFilter(RedactedURLs())

USER_AGENT = f"ocync/{__version__}"
# A hinted throttle wait this long is worth a warning (once per client): the run goes quiet.
LONG_THROTTLE_WAIT = 5.0


@dataclass(slots=True)
class Response:
    """A response whose body was read (error bodies capped)."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    stream: Reply | None = None  # the open reply when asked to stream


def registry_error(method: str, url: str, status: int, body: bytes, what: str = "") -> RegistryError:
    """The error for a non-success response, of the right class, with one clear line."""
    return status_error(what or f"{method} {redact_url(url)}", status, body, method=method, url=redact_url(url))


class RequestCore:
    """The request side of a :class:`~ocync.registry.client.RegistryClient`: lifecycle,
    credentials, the controller, and ``_exchange``. Use as an async context manager."""

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
        self.auth = AuthSession(self.name, self._send_token_request, multi_scope=self.profile.multi_scope_tokens)
        if credential is not None:
            self.auth.credential = credential
        self._rng = random.Random(seed)
        # Unix seconds, to read an HTTP-date Retry-After and GitHub's epoch x-ratelimit-reset;
        # waits themselves run on trio's clock.
        self._wall_clock = wall_clock
        self.counters = RequestLedger()
        self._warned_throttle = False
        self.silence = HostSilence(TIMEOUT_ATTEMPTS)
        # Docker Hub's pull quota (profile ``pull_kinds``): read from manifest answers, spent by pulls.
        self.pull_quota = PullQuota(self.settings.min_remaining) if self.profile.pull_kinds else None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
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
                now=trio.current_time(),
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

    def want_repository(self, repository: str) -> None:
        """``repository`` will be used: a multi-scope token asks for it with the others."""
        self.auth.want_repository(repository)

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
    ) -> tuple[Response | None, Action]:
        """Send once under a permit, count it once, and ask the exchange what comes next."""
        method, url, kind = ex.method, ex.url, ex.kind
        refused = ex.refusal()
        if refused is not None:
            raise refused
        req_headers, sent_token = await self._request_headers(ex, scopes, headers)
        body = content if isinstance(content, bytes) or content is None else CountedChunks(content, self.counters, kind)
        status: int | None = None
        received = b""
        async with self.controller.permit(kind) as permit:
            refused = ex.refusal()  # the wait for a permit may have been long
            if refused is not None:
                raise refused
            quota, pull_ticket = self._pull_ticket(kind, url)
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
                if quota is not None:
                    reading = None if status is None else pull_quota_from_headers(reply.headers)
                    settle = quota.answered if kind in self.profile.pull_kinds else quota.observe
                    settle(pull_ticket, reading, trio.current_time(), ok=status == 200)
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
            if budget is not None and not self.profile.pull_kinds:  # a pull quota is planned, not paused on
                self.controller.observe_budget(*budget)
        return Response(status, reply.headers, received, reply.url, reply if keep_open else None), action

    async def _request_headers(
        self, ex: Exchange, scopes: tuple[str, ...], headers: Mapping[str, str] | None
    ) -> tuple[dict[str, str], str | None]:
        """The headers to send, with the credential's Authorization (only to the registry's
        own origin, not e.g. a storage host a blob GET is redirected to), and the token sent."""
        req_headers = dict(headers or {})
        sent_token: str | None = None
        if ex.authenticate and ex.same_origin:
            auth, sent_token = await self.auth.header(scopes)
            if auth is not None:
                req_headers["Authorization"] = auth
        return req_headers, sent_token

    def _pull_ticket(self, kind: str, url: str) -> tuple[PullQuota | None, int]:
        """The pull quota to tell about this request's answer, and its ticket; a pull the
        quota cannot cover is refused here, before it is sent (it would only get a 429)."""
        quota = self.pull_quota
        if quota is None or kind not in ("manifest_get", "manifest_head"):
            return None, 0
        if kind not in self.profile.pull_kinds:
            return quota, quota.ticket()
        ticket = quota.send()
        if ticket is None:
            raise PullQuotaExhausted(f"GET {redact_url(url)}: not sent: {quota.describe()}")
        return quota, ticket

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


__all__ = ["LONG_THROTTLE_WAIT", "USER_AGENT", "RequestCore", "Response", "registry_error"]
