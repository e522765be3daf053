"""The retry, auth, throttle and redirect rules of one logical request, as a pure state machine
(h11's ``Connection`` is the model: no sockets, no clock reads, ``now`` is a parameter).

The client sends, then feeds what happened to :class:`Exchange` (``on_transport_error`` or
``on_response``) and applies the action it returns: :class:`Deliver`, :class:`Retry`,
:class:`Reauthenticate`, :class:`Follow`, :class:`WaitThrottle` or :class:`Fail`.
"""

from __future__ import annotations

import random
from collections.abc import Container, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ocync.errors import (
    NotAnswering,
    OcyncError,
    RegistryError,
    RequestTimeout,
    StaleToken,
    Throttled,
    TransportError,
)
from ocync.ratelimit.signals import ThrottleSignal, throttle_signal
from ocync.registry.origin import Origin

# A throttled request is retried this many times before Throttled is raised.
MAX_THROTTLE_RETRIES = 30
# RFC 9110 §15.4 caps nothing; browsers stop at 20, curl at 50. A registry needs one hop
# (GHCR and Docker Hub answer blob GETs with a 307 to a storage host); 5 leaves room.
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Attempts for a request that timed out (a hung registry should fail in minutes, not ten).
TIMEOUT_ATTEMPTS = 2
# Backoff for 5xx / connection errors: 0.2 s doubling to 10 s, "full jitter" half of it.
RETRY_BASE = 0.2
RETRY_MAX = 10.0


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

    def not_answering(self, host: str, read_timeout: float, method: str, url: str) -> NotAnswering:
        path = urlsplit(url.split("?", 1)[0]).path or "/"
        return NotAnswering(
            f"{host}: stopped answering (nothing received for {read_timeout:g} s, "
            f"{self.in_a_row} times in a row); given up for this run ({method} {path})"
        )


@dataclass(frozen=True, slots=True)
class Deliver:
    """The answer is the caller's (success, or an error status the caller maps)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Send again after ``delay`` seconds (5xx, a connection error)."""

    delay: float


@dataclass(frozen=True, slots=True)
class Reauthenticate:
    """Send again with fresh credentials: ``stale`` is the rejected token (None on first
    contact, when the 401 taught the challenge). With ``error`` the body cannot be sent
    again: refresh, then raise it (the caller restarts the transfer)."""

    stale: str | None
    error: StaleToken | None = None


@dataclass(frozen=True, slots=True)
class Follow:
    """Send to ``url`` (a redirect), counted as ``kind`` from now on."""

    url: str
    kind: str


@dataclass(frozen=True, slots=True)
class WaitThrottle:
    """Wait as the controller says for the ``throttles``-th throttle in a row, then resend
    (with ``error``, raise it after the wait: a streamed body is gone)."""

    signal: ThrottleSignal
    throttles: int
    error: Throttled | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """Give up with ``error`` (raised from ``cause``)."""

    error: OcyncError
    cause: BaseException | None = None


Action = Deliver | Retry | Reauthenticate | Follow | WaitThrottle | Fail


@dataclass(frozen=True, slots=True)
class ExchangeStatistics:
    attempts: int
    throttles: int
    redirects: int
    challenged: bool
    refreshed: bool
    kind: str
    url: str


def read_throttle(status: int, headers: Mapping[str, str], body: bytes, now: float) -> ThrottleSignal | None:
    """throttle_signal, with a body too deeply nested to parse read as no body at all."""
    try:
        return throttle_signal(status, headers, body, now=now)
    except RecursionError:
        return throttle_signal(status, headers, b"", now=now)


class Exchange:
    """One logical request: its attempts, throttles, auth retries and redirects so far."""

    def __init__(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        base_url: str,
        replayable: bool = True,
        attempts: int = 5,
        ok: Container[int] = (200,),
        follow: bool = False,
        authenticate: bool = True,
        silence: HostSilence | None = None,
        read_timeout: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.kind = kind
        self.method = method
        self.url = url
        self.replayable = replayable
        self.max_attempts = attempts
        self.ok = ok
        self.follow = follow
        self.authenticate = authenticate
        self.silence = silence or HostSilence(TIMEOUT_ATTEMPTS)
        self._base = Origin.of(base_url)
        self._host = urlsplit(base_url).netloc
        self._read_timeout = read_timeout
        self._rng = rng or random.Random()
        self.attempt = 0
        self.throttles = 0
        self.redirects = 0
        self.challenged = False
        self.refreshed = False
        self.signal: ThrottleSignal | None = None  # of the last answer

    @property
    def same_origin(self) -> bool:
        """Credentials go only to the registry's origin (and its token realm)."""
        return Origin.of(self.url) == self._base

    def backoff(self, attempt: int) -> float:
        ceiling = min(RETRY_MAX, RETRY_BASE * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def _not_answering(self) -> NotAnswering:
        return self.silence.not_answering(self._host, self._read_timeout, self.method, self.url)

    def refusal(self) -> NotAnswering | None:
        """Before each send (and again after the wait for a permit): a host given up is not
        asked again."""
        return self._not_answering() if self.silence.given_up else None

    def on_transport_error(self, error: TransportError) -> Retry | Fail:
        self.signal = None
        timed_out = isinstance(error, RequestTimeout)
        given_up = timed_out and self.silence.timed_out()
        self.attempt += 1
        # A host that did not answer in time rarely answers the next time: one retry
        # (so a hung server costs 2 timeouts, not `attempts` of them).
        limit = min(self.max_attempts, TIMEOUT_ATTEMPTS) if timed_out else self.max_attempts
        last = not self.replayable or self.attempt >= limit
        if given_up:
            # not temporary: the callers' own restarts would only wait again
            return Fail(NotAnswering(str(error)) if last else self._not_answering(), error)
        if last:
            return Fail(error)
        return Retry(self.backoff(self.attempt))

    def on_response(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        sent_token: str | None = None,
        learned: bool = False,
        bearer: bool = False,
        now: float = 0.0,
    ) -> Action:
        """What to do with an answer. ``learned``: a 401 taught a usable challenge;
        ``bearer``: the challenge in use is Bearer (a rejected token is refreshed)."""
        self.silence.answered()
        self.signal = read_throttle(status, headers, body, now)
        if self.signal is not None:
            return self._throttled(status, self.signal)
        if status == 401 and self.authenticate and self.same_origin:
            action = self._unauthorized(sent_token, learned, bearer)
            if action is not None:
                return action
        if status >= 500 and status not in self.ok:
            self.attempt += 1
            if self.replayable and self.attempt < self.max_attempts:
                return Retry(self.backoff(self.attempt))
        if self.follow and status in REDIRECT_STATUSES and "location" in headers:
            return self._redirect(status, headers["location"])
        return Deliver()

    def _throttled(self, status: int, signal: ThrottleSignal) -> WaitThrottle | Fail:
        self.throttles += 1
        if self.replayable and self.throttles <= MAX_THROTTLE_RETRIES:
            return WaitThrottle(signal, self.throttles)
        error = Throttled(
            f"{self._shown}: still throttled after {self.throttles} waits ({signal.reason}) ({self.method})",
            retry_after=signal.retry_after,
            status=status,
            method=self.method,
            url=self._shown,
        )
        if self.throttles <= MAX_THROTTLE_RETRIES:  # the body is gone: wait, the caller restarts
            return WaitThrottle(signal, self.throttles, error)
        return Fail(error)

    def _unauthorized(self, sent_token: str | None, learned: bool, bearer: bool) -> Reauthenticate | None:
        if sent_token is None and learned and not self.challenged:
            self.challenged = True  # first contact: the challenge says where tokens come from
            stale = None
        elif sent_token is not None and not self.refreshed:
            self.refreshed = True  # the token expired or lacks a scope: refresh once
            stale = sent_token if bearer else None
        else:
            return None
        if self.replayable:
            return Reauthenticate(stale)
        return Reauthenticate(stale, StaleToken(f"{self.method} {self._shown}: token rejected mid-transfer; restarting"))

    def _redirect(self, status: int, location: str) -> Follow | Fail:
        self.redirects += 1
        if self.redirects > MAX_REDIRECTS:
            return Fail(RegistryError(f"{self.method} {self._shown}: too many redirects", status=status))
        try:
            url = urljoin(self.url, location)
        except ValueError as exc:
            return Fail(RegistryError(f"{self._shown}: the registry sent an invalid URL ({exc})"))
        if self.kind == "blob_get" or Origin.of(url) != self._base:
            self.kind = "storage_get"
        self.url = url
        return Follow(url, self.kind)

    @property
    def _shown(self) -> str:
        """The URL as messages show it: no query, no userinfo (signed URLs carry secrets)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def statistics(self) -> ExchangeStatistics:
        return ExchangeStatistics(
            self.attempt, self.throttles, self.redirects, self.challenged, self.refreshed, self.kind, self.url
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (f"<Exchange {self.method} {self._shown} kind={s.kind} attempts={s.attempts} "
                f"throttles={s.throttles} redirects={s.redirects}>")


__all__ = [
    "MAX_REDIRECTS",
    "MAX_THROTTLE_RETRIES",
    "REDIRECT_STATUSES",
    "TIMEOUT_ATTEMPTS",
    "Action",
    "Deliver",
    "Exchange",
    "ExchangeStatistics",
    "Fail",
    "Follow",
    "HostSilence",
    "Reauthenticate",
    "Retry",
    "WaitThrottle",
    "read_throttle",
]
