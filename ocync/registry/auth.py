"""Credentials and the bearer-token flow, as one import for the client, the engine and the
CLI. The ideas live in their own modules:

- :mod:`ocync.registry.credentials`: ``auth:`` settings, resolved credentials, secret redaction;
- :mod:`ocync.registry.dockerconfig`: the docker config file and credential helpers;
- :mod:`ocync.registry.tokens`: token requests, token responses, the token cache.
"""

from __future__ import annotations

from ocync.registry.credentials import (
    ANONYMOUS,
    AUTH_KINDS,
    AuthKind,
    AuthSettings,
    Credential,
    known_secrets,
    remember_secret,
    secret_scope,
)
from ocync.registry.dockerconfig import (
    credential_helper_timeout,
    docker_config_path,
    resolve_credential,
    run_credential_helper,
)
from ocync.registry.tokens import (
    TokenCache,
    TokenRequest,
    parse_token_response,
    repository_scope,
    token_request,
)

__all__ = [
    "ANONYMOUS",
    "AUTH_KINDS",
    "AuthKind",
    "AuthSettings",
    "Credential",
    "TokenCache",
    "TokenRequest",
    "credential_helper_timeout",
    "docker_config_path",
    "known_secrets",
    "parse_token_response",
    "remember_secret",
    "repository_scope",
    "resolve_credential",
    "run_credential_helper",
    "secret_scope",
    "token_request",
]
