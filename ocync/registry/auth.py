"""Credentials and the bearer-token flow (distribution docs/spec/auth/token.md, oauth.md).

Credential sources: anonymous, basic (username + password/PAT, presented at the token
endpoint or on a Basic challenge), static_token (sent as Bearer directly) and docker_config
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``: ``auths`` entries with base64
``auth`` or ``identitytoken``, ``credsStore`` / ``credHelpers`` via ``docker-credential-<name>
get``). Secrets never appear in a ``repr``, a log line or an error message: every secret
resolved inside a ``secret_scope()`` is remembered so output can be redacted by value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import trio

from ocync.errors import ConfigError, Unauthorized
from ocync.oci.challenge import Challenge
from ocync.oci.headertext import (
    CONTROL_CHARACTER_PROBLEM,
    NON_ASCII_TOKEN_PROBLEM,
    has_control_character,
)
from ocync.oci.reference import DOCKER_HUB, normalise_registry

log = logging.getLogger(__name__)

AuthKind = Literal["anonymous", "basic", "static_token", "docker_config", "ghcr"]
AUTH_KINDS: tuple[str, ...] = ("anonymous", "basic", "static_token", "docker_config", "ghcr")

# distribution token.md: "If omitted, clients should assume a 60 second lifetime".
DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little before expiry so a request does not race the token's end.
TOKEN_EXPIRY_MARGIN = 0.1
# docker/cli config/credentials: the key Docker Hub credentials are stored under.
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
# docker/cli config files are a few KiB; anything this big is not one.
MAX_DOCKER_CONFIG_BYTES = 4 * 1024 * 1024
# A credential helper waiting on a locked keychain or a GUI prompt must not hang a run forever.
CREDENTIAL_HELPER_TIMEOUT = 30.0
# Overrides CREDENTIAL_HELPER_TIMEOUT (seconds), e.g. for a helper that needs a slow unlock.
CREDENTIAL_HELPER_TIMEOUT_ENV = "OCYNC_CREDENTIAL_HELPER_TIMEOUT"
# docker-credential-helpers: Username "<token>" means Secret is an identity token.
IDENTITY_TOKEN_USERNAME = "<token>"


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
_ghcr_alias_warned = False


def docker_config_path(override: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``override`` (a file, whatever its name, or a directory holding config.json), else
    ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (docker CLI rules)."""
    if override is not None:
        # skopeo/podman --authfile: the file as given; a directory is docker's --config style.
        return override / "config.json" if override.is_dir() else override
    env = (os.environ if environ is None else environ).get("DOCKER_CONFIG")
    base = Path(env) if env else Path.home() / ".docker"
    return base / "config.json"


def _load_docker_config(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_DOCKER_CONFIG_BYTES + 1)
        if len(raw) > MAX_DOCKER_CONFIG_BYTES:
            raise ConfigError(f"docker config {path} is larger than {MAX_DOCKER_CONFIG_BYTES >> 20} MiB")
        text = raw.decode("utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read docker config {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise ConfigError(f"docker config {path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"docker config {path} is not a JSON object")
    return doc


def _config_keys(host: str) -> list[str]:
    """Keys a host's entry may be stored under in ``auths`` / ``credHelpers``."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if normalise_registry(host) == DOCKER_HUB:
        keys = [DOCKER_HUB_CONFIG_KEY, "docker.io", "index.docker.io", "registry-1.docker.io", *keys]
    return keys


@dataclass(frozen=True, slots=True)
class _ConfigEntry:
    helper: str | None = None
    credential: Credential | None = None


def _find_config_entry(doc: Mapping[str, object], host: str, path: Path) -> _ConfigEntry | None:
    keys = _config_keys(host)
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key in keys:
            name = helpers.get(key)
            if isinstance(name, str) and name:
                return _ConfigEntry(helper=name)
    auths = doc.get("auths")
    entry: object = None
    if isinstance(auths, dict):
        for key in keys:
            if key in auths:
                entry = auths[key]
                break
        else:
            # Entries written as URLs with other paths: compare hosts.
            for key, value in auths.items():
                if isinstance(key, str) and _host_of(key) in (host, normalise_registry(host)):
                    entry = value
                    break
    if isinstance(entry, dict):
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            if has_control_character(token):
                raise ConfigError(f"docker config {path}: the identitytoken for {host} {CONTROL_CHARACTER_PROBLEM}")
            return _ConfigEntry(credential=Credential("identity_token", None, token, f"docker config {path}"))
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                decoded = base64.b64decode(auth, validate=False).decode()
            except (ValueError, UnicodeDecodeError):
                raise ConfigError(f"docker config {path}: the auth entry for {host} is not base64") from None
            if has_control_character(decoded):
                raise ConfigError(f"docker config {path}: the auth entry for {host} {CONTROL_CHARACTER_PROBLEM}")
            user, sep, password = decoded.partition(":")
            if not sep:
                raise ConfigError(f"docker config {path}: the auth entry for {host} is not user:password")
            return _ConfigEntry(credential=Credential("basic", user, password, f"docker config {path}"))
        plain_user, plain_password = entry.get("username"), entry.get("password")
        if isinstance(plain_user, str) and isinstance(plain_password, str) and plain_user:
            if has_control_character(plain_password):
                raise ConfigError(f"docker config {path}: the password for {host} {CONTROL_CHARACTER_PROBLEM}")
            return _ConfigEntry(
                credential=Credential("basic", plain_user, plain_password, f"docker config {path}")
            )
    # docker/cli: with credsStore every host is looked up in the store (the `auths` entries
    # left are empty markers).
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return _ConfigEntry(helper=store)
    return None


def _host_of(key: str) -> str:
    text = key.split("://", 1)[-1]
    return text.split("/", 1)[0]


def credential_helper_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a credential helper gets: ``$OCYNC_CREDENTIAL_HELPER_TIMEOUT``, else the default."""
    text = (os.environ if environ is None else environ).get(CREDENTIAL_HELPER_TIMEOUT_ENV, "").strip()
    if not text:
        return CREDENTIAL_HELPER_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"{CREDENTIAL_HELPER_TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return seconds


async def _kill_process_group(process: trio.Process) -> None:
    """On timeout: the helper may have started children (an agent, a prompt) that hold its
    pipes open; it runs in its own session, so its whole process group goes."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone


async def run_credential_helper(name: str, server: str) -> Credential | None:
    """``docker-credential-<name> get`` with the server on stdin (docker-credential-helpers).

    A helper that does not answer in time is killed (with its children) and the host goes
    anonymous with a warning, like a helper that is not installed."""
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise ConfigError(f"credential helper {program} is not on PATH")
    timeout = credential_helper_timeout()
    try:
        with trio.fail_after(timeout):
            result = await trio.run_process(
                [path, "get"], stdin=server.encode(), capture_stdout=True, capture_stderr=True, check=False,
                start_new_session=True, deliver_cancel=_kill_process_group,
            )
    except OSError as exc:
        raise ConfigError(f"credential helper {program} failed to start: {exc.strerror}") from None
    except trio.TooSlowError:
        log.warning("credential helper %s did not answer within %g s for %s (killed it): anonymous",
                    program, timeout, server)
        return None
    if result.returncode != 0:
        message = result.stdout.decode(errors="replace").strip() + result.stderr.decode(errors="replace")
        if "credentials not found" in message.lower():
            return None
        raise ConfigError(f"credential helper {program} exited with {result.returncode} for {server}")
    try:
        doc = json.loads(result.stdout)
    except (ValueError, RecursionError):
        raise ConfigError(f"credential helper {program} printed no JSON for {server}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"credential helper {program} printed unexpected JSON for {server}")
    user, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    if has_control_character(secret):
        raise ConfigError(f"credential helper {program}: the secret for {server} {CONTROL_CHARACTER_PROBLEM}")
    source = f"credential helper {program}"
    if user == IDENTITY_TOKEN_USERNAME:
        return Credential("identity_token", None, secret, source)
    return Credential("basic", user if isinstance(user, str) else "", secret, source)


async def resolve_credential(host: str, settings: AuthSettings) -> Credential:
    """Turn settings into credentials for ``host`` (the registry name, e.g. ``ghcr.io``)."""
    global _ghcr_alias_warned
    kind = settings.kind
    if kind == "anonymous":
        return ANONYMOUS
    if kind == "basic":
        return Credential("basic", settings.username, settings.password, "config")
    if kind == "static_token":
        return Credential("static_token", None, settings.token, "config")
    if kind == "ghcr":
        if not _ghcr_alias_warned:
            _ghcr_alias_warned = True
            log.warning("auth type 'ghcr' is deprecated: it is an alias of 'docker_config'")
        kind = "docker_config"
    path = docker_config_path(settings.docker_config)
    doc = await trio.to_thread.run_sync(_load_docker_config, path)
    entry = _find_config_entry(doc, host, path)
    if entry is None:
        if kind == "docker_config":
            log.info("no docker config entry for %s in %s: anonymous", host, path)
        return ANONYMOUS
    if entry.credential is not None:
        return entry.credential
    assert entry.helper is not None
    server = DOCKER_HUB_CONFIG_KEY if normalise_registry(host) == DOCKER_HUB else host
    if kind is None and shutil.which(f"docker-credential-{entry.helper}") is None:
        log.warning("credential helper docker-credential-%s is not on PATH: anonymous for %s", entry.helper, host)
        return ANONYMOUS
    found = await run_credential_helper(entry.helper, server)
    return found if found is not None else ANONYMOUS


# --- bearer tokens -------------------------------------------------------------------------


def repository_scope(repository: str, push: bool) -> str:
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


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

    def covers(self, scopes: tuple[str, ...], now: float) -> bool:
        """Whether a live token holds ``scopes`` (a look, not a use: no hit counted)."""
        wanted = _expand(scopes)
        return any(expires > now and wanted <= key for key, (_, expires) in self._tokens.items())

    def put(self, scopes: tuple[str, ...], token: str, lifetime: float, now: float) -> None:
        self.fetched += 1
        self._tokens[_expand(scopes)] = (token, now + lifetime * (1 - TOKEN_EXPIRY_MARGIN))

    def invalidate(self, token: str) -> None:
        for key in [k for k, (t, _) in self._tokens.items() if t == token]:
            del self._tokens[key]

    def statistics(self) -> dict[str, int]:
        return {"cached": len(self._tokens), "fetched": self.fetched, "hits": self.hits}

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
