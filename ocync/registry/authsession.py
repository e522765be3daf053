"""The auth state of one client: the challenge the registry taught, bearer tokens per scope
set (one fetch at a time per scope set), and which repositories want push tokens. The token
request itself is sent by the client (it is counted and rate-controlled like any other).

When the registry grants multi-scope tokens (profile data), the repositories a run announced
ride along on each token request, so one token serves many repositories instead of one each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import trio

from ocync.errors import RegistryError, Unauthorized
from ocync.oci.challenge import Challenge, find_challenge, parse_www_authenticate
from ocync.oci.errorbody import parse_oci_errors
from ocync.registry.credentials import ANONYMOUS, Credential
from ocync.registry.neterrors import redact_url
from ocync.registry.tokens import (
    TokenCache,
    TokenRequest,
    parse_token_response,
    repository_actions,
    repository_scope,
    token_request,
)

log = logging.getLogger(__name__)

# Sends a token request -> (status, body).
TokenSender = Callable[[TokenRequest], Awaitable[tuple[int, bytes]]]
# Scopes one token request may carry. Bounded so the request URL (and a JWT that lists its
# grants, sent on every request) stays well inside the 8 KiB request head that common front
# ends accept (nginx large_client_header_buffers 8k).
MAX_SCOPES_PER_TOKEN = 16
# The lock key of every token fetch of a multi-scope session: one fetch at a time, so requests
# that start together share the first token instead of each fetching one.
_ONE_FETCH: tuple[str, ...] = ("*",)


class AuthSession:
    """What to put in ``Authorization`` for a request, learnt from 401 challenges."""

    def __init__(self, registry: str, send_token_request: TokenSender, *, multi_scope: bool = False) -> None:
        self.registry = registry
        self.credential: Credential = ANONYMOUS
        self.challenge: Challenge | None = None
        self.tokens = TokenCache()
        self.multi_scope = multi_scope
        self._send = send_token_request
        self._locks: dict[tuple[str, ...], trio.Lock] = {}
        self._push_repos: set[str] = set()
        # Announced repositories no token request has asked for yet, in announcement order
        # (a FIFO: each token request takes from the front), and what each asked one got:
        # repository -> asked with push. Both O(1) per repository, for runs of 10,000.
        self._pending: dict[str, None] = {}
        self._asked: dict[str, bool] = {}
        self._multi_tokens: set[str] = set()

    def want_push(self, repository: str) -> None:
        self._push_repos.add(repository)
        self._announce(repository)

    def want_repository(self, repository: str) -> None:
        """A repository the run will use: a multi-scope token request asks for it too."""
        self._announce(repository)

    def _announce(self, repository: str) -> None:
        asked = self._asked.get(repository)
        if asked is None or (not asked and repository in self._push_repos):
            self._pending[repository] = None

    def scopes(self, repository: str | None, push: bool = False, mount_from: str | None = None) -> tuple[str, ...]:
        if repository is None:
            return ()
        scopes = [repository_scope(repository, push or repository in self._push_repos)]
        if mount_from is not None and mount_from != repository:
            scopes.append(repository_scope(mount_from, False))
        return tuple(scopes)

    @property
    def bearer(self) -> bool:
        return self.challenge is not None and self.challenge.scheme == "bearer"

    async def header(self, scopes: tuple[str, ...]) -> tuple[str | None, str | None]:
        """-> (Authorization value, the fetched token it carries) for the registry's origin."""
        cred = self.credential
        if cred.kind == "static_token":
            return f"Bearer {cred.secret}", None
        challenge = self.challenge
        if challenge is None:
            return None, None
        if challenge.scheme == "basic":
            return cred.basic_header(), None
        if challenge.scheme == "bearer":
            token = await self.token_for(scopes)
            return f"Bearer {token}", token
        return None, None

    async def token_for(self, scopes: tuple[str, ...], stale: str | None = None) -> str:
        cached = self.tokens.get(scopes, trio.current_time())
        if cached is not None and cached != stale:
            return cached
        if stale is not None and stale in self._multi_tokens:
            # A token asked for several repositories was refused for one of them: this token
            # server grants fewer scopes than it was asked; one repository per token from now.
            log.info("%s refused a multi-scope token; asking one token per repository", self.registry)
            self.multi_scope = False
        async with self._locks.setdefault(_ONE_FETCH if self.multi_scope else scopes, trio.Lock()):
            cached = self.tokens.get(scopes, trio.current_time())
            if cached is not None and cached != stale:
                return cached
            if stale is not None:
                self.tokens.invalidate(stale)
            asked = self._with_announced(scopes) if self.multi_scope else scopes
            try:
                token, lifetime = await self._fetch(asked)
            except Unauthorized as exc:
                if len(asked) == len(scopes) or exc.status in (0, 401):
                    raise  # 401: the credential itself was refused (token.md); asking again won't help
                # A token server may refuse the whole request (403, 400) for one scope it will
                # not grant (token.md says it should grant the subset): ask for what is wanted.
                log.info("%s refused a multi-scope token request; asking one token per repository",
                         self.registry)
                self.multi_scope = False
                asked = scopes
                token, lifetime = await self._fetch(asked)
            if len(asked) > len(scopes):
                self._multi_tokens.add(token)
            self._note_asked(asked)
            self.tokens.put(asked, token, lifetime, trio.current_time())
            return token

    def _with_announced(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        """``scopes`` first (a server that honours only some still covers them), then the
        announced repositories not asked yet, up to MAX_SCOPES_PER_TOKEN in all."""
        if not scopes:
            return scopes
        asked = list(scopes)
        for repository in self._pending:
            if len(asked) >= MAX_SCOPES_PER_TOKEN:
                break
            scope = repository_scope(repository, repository in self._push_repos)
            if scope not in asked:
                asked.append(scope)
        return tuple(asked)

    def _note_asked(self, scopes: tuple[str, ...]) -> None:
        for repository, push in repository_actions(scopes):
            self._asked[repository] = push or self._asked.get(repository, False)
            if self._asked[repository] or repository not in self._push_repos:
                self._pending.pop(repository, None)

    async def _fetch(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        assert self.challenge is not None
        failed = f"authentication to {self.registry} failed ({self.credential.source})"
        try:
            request = token_request(self.challenge, scopes, self.credential)
        except Unauthorized as exc:
            raise Unauthorized(f"{failed}: {exc}") from None
        status, body = await self._send(request)
        if status != 200:
            raise Unauthorized(
                f"{failed}: token endpoint answered HTTP {status}",
                status=status,
                method=request.method,
                url=redact_url(request.url),
                errors=parse_oci_errors(body),
            )
        try:
            return parse_token_response(body)
        except Unauthorized as exc:
            raise Unauthorized(f"{failed}: {exc} ({redact_url(request.url)})") from None

    def learn_challenge(self, headers: httpx.Headers) -> bool:
        """Take the Bearer (else Basic, with a basic credential) challenge of a 401."""
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
        self.challenge = chosen
        return True

    def __repr__(self) -> str:
        scheme = self.challenge.scheme if self.challenge else None
        return f"<AuthSession {self.registry} challenge={scheme} {self.tokens!r}>"


__all__ = ["MAX_SCOPES_PER_TOKEN", "AuthSession", "TokenSender"]
