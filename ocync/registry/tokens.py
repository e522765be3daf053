"""The bearer-token flow (distribution docs/spec/auth/token.md, oauth.md): the token request
for a challenge, the token endpoint's answer, and the cache of tokens per scope set. Pure: the
request is sent by the client and times are passed in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from ocync.errors import Unauthorized
from ocync.oci.challenge import Challenge
from ocync.oci.headertext import (
    CONTROL_CHARACTER_PROBLEM,
    NON_ASCII_TOKEN_PROBLEM,
    has_control_character,
)
from ocync.registry.credentials import Credential

# distribution token.md: "If omitted, clients should assume a 60 second lifetime".
DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little before expiry so a request does not race the token's end.
TOKEN_EXPIRY_MARGIN = 0.1


def repository_scope(repository: str, push: bool) -> str:
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


def repository_actions(scopes: tuple[str, ...]) -> list[tuple[str, bool]]:
    """The (repository, push?) pairs of the ``repository:`` scopes among ``scopes``."""
    out: list[tuple[str, bool]] = []
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        kind, _, name = resource.partition(":")
        if kind == "repository" and name:
            out.append((name, "push" in actions.split(",")))
    return out


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The token endpoint request to make (GET for basic/anonymous, POST for identity tokens)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    form: bytes | None = None

    def __repr__(self) -> str:
        return f"TokenRequest({self.method} {self.url})"


def token_request(challenge: Challenge, scopes: tuple[str, ...], credential: Credential) -> TokenRequest:
    """Build the token request for a Bearer ``challenge`` (token.md / oauth.md)."""
    realm = challenge.realm
    if not realm:
        raise Unauthorized("bearer challenge without a realm")
    query: list[tuple[str, str]] = []
    if challenge.service:
        query.append(("service", challenge.service))
    if credential.kind == "identity_token":
        form = [("grant_type", "refresh_token"), ("refresh_token", credential.secret or ""), ("client_id", "ocync")]
        form += query + [("scope", " ".join(scopes))] if scopes else query
        return TokenRequest(
            "POST",
            realm,
            (("Content-Type", "application/x-www-form-urlencoded"),),
            urlencode(form).encode(),
        )
    query += [("scope", scope) for scope in scopes]
    sep = "&" if "?" in realm else "?"
    url = realm + (sep + urlencode(query) if query else "")
    headers: tuple[tuple[str, str], ...] = ()
    basic = credential.basic_header()
    if basic is not None:
        headers = (("Authorization", basic),)
    return TokenRequest("GET", url, headers)


def parse_token_response(body: bytes) -> tuple[str, float]:
    """-> (token, lifetime seconds). ``token`` or ``access_token`` (token.md)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise Unauthorized("token endpoint answered something that is not JSON") from None
    if not isinstance(doc, dict):
        raise Unauthorized("token endpoint answered unexpected JSON")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise Unauthorized("token endpoint answered no token")
    if has_control_character(token):
        raise Unauthorized(f"token endpoint answered a token that {CONTROL_CHARACTER_PROBLEM}")
    if not token.isascii():
        raise Unauthorized(f"token endpoint answered a token that {NON_ASCII_TOKEN_PROBLEM}")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, float(lifetime)


@dataclass(frozen=True, slots=True)
class TokenCacheStatistics:
    """Tokens held now, fetched from the token endpoint, and served from the cache."""

    cached: int = 0
    fetched: int = 0
    hits: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class TokenCache:
    """Bearer tokens per scope set; a pull,push token also serves pull. Times are passed in."""

    def __init__(self) -> None:
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}
        self.fetched = 0
        self.hits = 0

    def get(self, scopes: tuple[str, ...], now: float) -> str | None:
        wanted = _expand(scopes)
        for key, (token, expires) in self._tokens.items():
            if expires > now and wanted <= key:
                self.hits += 1
                return token
        return None

    def put(self, scopes: tuple[str, ...], token: str, lifetime: float, now: float) -> None:
        self.fetched += 1
        self._tokens[_expand(scopes)] = (token, now + lifetime * (1 - TOKEN_EXPIRY_MARGIN))

    def invalidate(self, token: str) -> None:
        for key in [k for k, (t, _) in self._tokens.items() if t == token]:
            del self._tokens[key]

    def statistics(self) -> TokenCacheStatistics:
        return TokenCacheStatistics(cached=len(self._tokens), fetched=self.fetched, hits=self.hits)

    def __repr__(self) -> str:
        return f"TokenCache(cached={len(self._tokens)}, fetched={self.fetched})"


def _expand(scopes: tuple[str, ...]) -> frozenset[str]:
    """``repository:a:pull,push`` -> {repository:a:pull, repository:a:push}."""
    out: set[str] = set()
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep:
            out.add(scope)
            continue
        out.update(f"{resource}:{action}" for action in actions.split(","))
    return frozenset(out)



__all__ = [
    "TokenCache",
    "TokenCacheStatistics",
    "TokenRequest",
    "parse_token_response",
    "repository_actions",
    "repository_scope",
    "token_request",
]
