"""Credentials from the docker config: ``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``, ``auths`` entries with base64 ``auth`` or ``identitytoken``, and
``credsStore`` / ``credHelpers`` via ``docker-credential-<name> get`` (docker/cli config rules,
docker-credential-helpers); ``resolve_credential`` turns ``auth:`` settings into a credential.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import trio

from ocync.errors import ConfigError
from ocync.oci.headertext import CONTROL_CHARACTER_PROBLEM, has_control_character
from ocync.oci.reference import DOCKER_HUB, normalise_registry
from ocync.registry.credentials import ANONYMOUS, AuthSettings, Credential

# The logger name of the module this was split from: users and tests filter on it.
log = logging.getLogger("ocync.registry.auth")

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


__all__ = [
    "credential_helper_timeout",
    "docker_config_path",
    "resolve_credential",
    "run_credential_helper",
]
