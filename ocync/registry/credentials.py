"""What a registry is authenticated with: the ``auth:`` settings, resolved credentials, and the
secrets to redact. Secrets never appear in a ``repr``, a log line or an error message: every
secret resolved inside a ``secret_scope()`` is remembered so output can be redacted by value.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ocync.errors import ConfigError
from ocync.oci.headertext import (
    CONTROL_CHARACTER_PROBLEM,
    NON_ASCII_TOKEN_PROBLEM,
    has_control_character,
)

AuthKind = Literal["anonymous", "basic", "static_token", "docker_config", "ghcr"]
AUTH_KINDS: tuple[str, ...] = ("anonymous", "basic", "static_token", "docker_config", "ghcr")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How to authenticate to one registry (from config ``auth:`` or the CLI)."""

    kind: AuthKind | None = None  # None: docker_config if it has an entry for the host
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    docker_config: Path | None = None  # overrides $DOCKER_CONFIG / ~/.docker

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in AUTH_KINDS:
            raise ConfigError(f"unknown auth type {self.kind!r} (expected one of {', '.join(AUTH_KINDS)})")
        if self.kind == "basic" and (not self.username or self.password is None):
            raise ConfigError("auth type basic needs a username and a password")
        if self.kind == "static_token" and not self.token:
            raise ConfigError("auth type static_token needs a token")
        for name, value in (("password", self.password), ("token", self.token)):
            if value is not None and has_control_character(value):
                raise ConfigError(f"the {name} {CONTROL_CHARACTER_PROBLEM}")
        if self.token is not None and not self.token.isascii():
            raise ConfigError(f"the token {NON_ASCII_TOKEN_PROBLEM}")




# --- secrets: validation and the values to redact -----------------------------------------

_known_secrets: set[str] | None = None


@contextmanager
def secret_scope() -> Iterator[set[str]]:
    """Remember every credential resolved inside for redaction by value; the CLI opens one
    per command. Outside a scope nothing is remembered."""
    global _known_secrets
    previous, _known_secrets = _known_secrets, set()
    try:
        yield _known_secrets
    finally:
        _known_secrets = previous


def remember_secret(secret: str | None) -> None:
    if secret and _known_secrets is not None:
        _known_secrets.add(secret)


def known_secrets() -> frozenset[str]:
    """The secrets of the current ``secret_scope()`` (empty outside one)."""
    return frozenset(_known_secrets or ())


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Credential:
    """Resolved credentials. ``kind``: anonymous | basic | identity_token | static_token."""

    kind: Literal["anonymous", "basic", "identity_token", "static_token"]
    username: str | None = None
    secret: str | None = None
    source: str = ""  # where it came from, for messages ("config", "docker config", ...)

    def __post_init__(self) -> None:
        remember_secret(self.secret)
        basic = self.basic_header()
        if basic is not None:
            remember_secret(basic.removeprefix("Basic "))

    @property
    def identity(self) -> str:
        """A non-secret identity for principal names (same identity -> same controller)."""
        if self.kind == "anonymous":
            return "anonymous"
        if self.kind == "basic" and self.username:
            return f"user:{self.username}"
        return f"{self.kind}:{_fingerprint(self.secret or '')}"

    def basic_header(self) -> str | None:
        if self.kind != "basic" or self.username is None:
            return None
        raw = f"{self.username}:{self.secret or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:
        who = f", username={self.username!r}" if self.username else ""
        return f"Credential({self.kind}{who}, source={self.source!r})"


ANONYMOUS = Credential("anonymous", source="anonymous")


__all__ = [
    "ANONYMOUS",
    "AUTH_KINDS",
    "AuthKind",
    "AuthSettings",
    "Credential",
    "known_secrets",
    "remember_secret",
    "secret_scope",
]
