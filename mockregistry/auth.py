"""Users, tokens and principals: the Docker token flow as GHCR serves it.

`GET /token?service=&scope=` with Basic `user:PAT` (or anonymously) returns `{"token": ...}`
(only that field, as GHCR does). Registry requests carry `Authorization: Bearer <token>`; like
GHCR, `Bearer <PAT>` is accepted directly. Users push to repositories under their own name and
under their listed namespaces; anyone pulls public repositories (globs).
"""

from __future__ import annotations

import base64
import fnmatch
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Bearer tokens live for 5 minutes (GHCR's and Docker Hub's tokens say expires_in 300).
TOKEN_TTL = 300.0


@dataclass(frozen=True, slots=True)
class Grant:
    """What a credential allows: ``access`` maps repository -> actions; ``full`` = a PAT."""

    user: str | None
    access: Mapping[str, frozenset[str]] = field(default_factory=dict)
    full: bool = False
    expires: float = float("inf")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of checking a request: principal always set; status 0 = allowed."""

    principal: str
    status: int = 0
    code: str = ""
    message: str = ""


def namespace_of(repo: str) -> str:
    return repo.split("/", 1)[0]


def parse_scopes(scopes: Iterable[str]) -> dict[str, set[str]]:
    """``repository:<name>:pull,push`` (repeatable, space separated) -> {name: actions}."""
    wanted: dict[str, set[str]] = {}
    for scope_param in scopes:
        for scope in scope_param.split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name:
                wanted.setdefault(name, set()).update(a for a in actions.split(",") if a)
            elif kind == "registry" and name == "catalog":
                wanted.setdefault("registry:catalog", set()).add("*")
    return wanted


class Authenticator:
    """Decides who a request is and whether it may do what it asks."""

    def __init__(
        self,
        *,
        enabled: bool,
        users: Mapping[str, str],
        user_namespaces: Mapping[str, Sequence[str]],
        public: Sequence[str],
    ) -> None:
        self.enabled = enabled
        self.users = dict(users)
        self._by_token = {token: name for name, token in users.items()}
        self.user_namespaces = {name: list(ns) for name, ns in user_namespaces.items()}
        self.public = list(public)
        self._tokens: dict[str, Grant] = {}
        self.issued = 0

    # -- permissions -----------------------------------------------------------------------------
    def is_public(self, repo: str) -> bool:
        return any(fnmatch.fnmatchcase(repo, glob) for glob in self.public)

    def can_push(self, user: str | None, repo: str) -> bool:
        if user is None:
            return False
        namespace = namespace_of(repo)
        allowed = self.user_namespaces.get(user, [])
        return namespace == user or namespace in allowed or "*" in allowed

    def can_pull(self, user: str | None, repo: str) -> bool:
        return self.is_public(repo) or self.can_push(user, repo)

    # -- credentials -----------------------------------------------------------------------------
    def basic_user(self, header: str) -> tuple[str | None, bool]:
        """(user, ok) from a Basic header; (None, True) when there is none."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, True
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text b64decode refuses
            return None, False
        user, sep, password = decoded.partition(":")
        if not sep:
            return None, False
        if self.users.get(user) == password:
            return user, True
        # GHCR accepts any user name with a valid PAT.
        owner = self._by_token.get(password)
        return (owner, True) if owner else (None, False)

    def issue_token(self, user: str | None, scopes: Iterable[str], now: float) -> tuple[str, Grant]:
        wanted = parse_scopes(scopes)
        access: dict[str, frozenset[str]] = {}
        for name, actions in wanted.items():
            granted: set[str] = set()
            if name == "registry:catalog":
                granted = {"*"} if user else set()
            else:
                if "pull" in actions and self.can_pull(user, name):
                    granted.add("pull")
                if actions & {"push", "delete", "*"} and self.can_push(user, name):
                    granted.update(actions & {"push", "delete", "*"})
            access[name] = frozenset(granted)
        grant = Grant(user, access, expires=now + TOKEN_TTL)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = grant
        self.issued += 1
        if len(self._tokens) > 100_000:  # bound memory under load tests
            self._tokens = {t: g for t, g in self._tokens.items() if g.expires > now}
        return token, grant

    def grant_for(self, authorization: str, now: float) -> Grant | None:
        """The grant an Authorization header carries, or None if it carries none (or a bad one)."""
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            grant = self._tokens.get(value)
            if grant is not None:
                return grant if grant.expires > now else None
            user = self._by_token.get(value)
            return Grant(user, full=True) if user else None
        if scheme == "basic":
            user, ok = self.basic_user(authorization)
            return Grant(user, full=True) if ok and user else None
        return None

    def principal_of(self, authorization: str | None, client: str, now: float) -> str:
        if authorization:
            grant = self.grant_for(authorization, now)
            if grant is not None and grant.user:
                return grant.user
            if authorization.lower().startswith("basic"):
                user, ok = self.basic_user(authorization)
                if ok and user:
                    return user
        return client

    def check(
        self, authorization: str | None, client: str, repo: str | None, action: str, now: float
    ) -> AuthResult:
        """May this request do ``action`` (pull/push/catalog) on ``repo``? (repo None: /v2/)"""
        grant = self.grant_for(authorization, now) if authorization else None
        principal = grant.user if grant is not None and grant.user else client
        if not self.enabled:
            return AuthResult(principal)
        if grant is None:
            return AuthResult(principal, 401, "UNAUTHORIZED", "authentication required")
        if repo is None:
            if action == "catalog" and not grant.full and "*" not in grant.access.get("registry:catalog", ()):
                return AuthResult(principal, 401, "UNAUTHORIZED", "authentication required")
            return AuthResult(principal)
        if grant.full:
            allowed = self.can_push(grant.user, repo) if action == "push" else self.can_pull(grant.user, repo)
            if allowed:
                return AuthResult(principal)
            return AuthResult(principal, 403, "DENIED", f"requested access to the resource is denied ({action} {repo})")
        actions = grant.access.get(repo)
        if actions is None:
            # The token is for other repositories: challenge so the client fetches one for this.
            return AuthResult(principal, 401, "UNAUTHORIZED", "authentication required")
        if action in actions or "*" in actions or (action == "pull" and "push" in actions):
            return AuthResult(principal)
        return AuthResult(principal, 403, "DENIED", f"requested access to the resource is denied ({action} {repo})")

    def statistics(self) -> dict[str, int]:
        return {"users": len(self.users), "tokens_issued": self.issued, "tokens_live": len(self._tokens)}

    def __repr__(self) -> str:
        return f"Authenticator(enabled={self.enabled}, users={sorted(self.users)}, public={self.public})"
