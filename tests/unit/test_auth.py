"""Credential resolution (docker config, credential helpers) and the token-flow pieces."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from ocync.errors import ConfigError, Unauthorized
from ocync.oci.challenge import Challenge
from ocync.registry import dockerconfig as auth_mod
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

FAKE_HELPER = """#!/bin/sh
# A fake docker-credential helper: `get` reads the server URL on stdin.
read server
case "$server" in
  ghcr.io) echo '{"ServerURL":"ghcr.io","Username":"helper-user","Secret":"helper-secret"}' ;;
  tok.example) echo '{"ServerURL":"tok.example","Username":"<token>","Secret":"refresh-123"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"hub","Username":"hubuser","Secret":"hubpass"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text(FAKE_HELPER)
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def write_config(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_explicit_kinds() -> None:
    assert await resolve_credential("x.io", AuthSettings(kind="anonymous")) is ANONYMOUS
    basic = await resolve_credential("x.io", AuthSettings(kind="basic", username="u", password="p"))
    assert (basic.kind, basic.username, basic.secret) == ("basic", "u", "p")
    static = await resolve_credential("x.io", AuthSettings(kind="static_token", token="t0k"))
    assert (static.kind, static.secret) == ("static_token", "t0k")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        pytest.param({"kind": "basic", "username": "u"}, "needs a username and a password", id="basic-no-password"),
        pytest.param({"kind": "static_token"}, "needs a token", id="static-no-token"),
        pytest.param({"kind": "kerberos"}, "unknown auth type", id="unknown"),
        pytest.param({"kind": "basic", "username": "u", "password": "p-SECRET\n2"}, "the password contains a control",
                     id="password-newline"),
        pytest.param({"kind": "static_token", "token": "t-SECRET\r"}, "the token contains a control", id="token-cr"),
        pytest.param({"kind": "static_token", "token": "t-SECRET\u2028"}, "the token contains a control",
                     id="token-line-separator"),
        pytest.param({"kind": "static_token", "token": "t-SECRET\xe9"}, "the token contains a non-ASCII",
                     id="token-non-ascii"),
    ],
)
def test_invalid_settings(settings: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        AuthSettings(**settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        AuthSettings(**settings)  # type: ignore[arg-type]
    assert "SECRET" not in str(caught.value)


async def test_docker_config_auths(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "auths": {
                "registry.example:5000": {"auth": b64("alice:s3cret:with:colons")},
                "https://idt.example": {"identitytoken": "idt-xyz"},
                "https://index.docker.io/v1/": {"auth": b64("hub:hubpw")},
            }
        },
    )
    settings = AuthSettings(kind="docker_config", docker_config=path)
    cred = await resolve_credential("registry.example:5000", settings)
    assert (cred.kind, cred.username, cred.secret) == ("basic", "alice", "s3cret:with:colons")
    idt = await resolve_credential("idt.example", settings)
    assert (idt.kind, idt.secret) == ("identity_token", "idt-xyz")
    hub = await resolve_credential("docker.io", settings)
    assert (hub.username, hub.secret) == ("hub", "hubpw")
    assert await resolve_credential("other.example", settings) is ANONYMOUS


async def test_unset_kind_uses_docker_config_only_with_an_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, {"auths": {"ghcr.io": {"auth": b64("bob:pat")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(path.parent))
    found = await resolve_credential("ghcr.io", AuthSettings())
    assert (found.kind, found.username) == ("basic", "bob")
    assert await resolve_credential("quay.io", AuthSettings()) is ANONYMOUS
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "missing"))
    assert await resolve_credential("ghcr.io", AuthSettings()) is ANONYMOUS


async def test_cred_helpers_and_store(tmp_path: Path, helper_dir: Path) -> None:
    path = write_config(tmp_path, {"credHelpers": {"ghcr.io": "fake", "tok.example": "fake"}})
    settings = AuthSettings(kind="docker_config", docker_config=path)
    cred = await resolve_credential("ghcr.io", settings)
    assert (cred.kind, cred.username, cred.secret) == ("basic", "helper-user", "helper-secret")
    assert "credential helper docker-credential-fake" in cred.source
    tok = await resolve_credential("tok.example", settings)
    assert (tok.kind, tok.secret) == ("identity_token", "refresh-123")
    store = write_config(tmp_path, {"credsStore": "fake", "auths": {"https://index.docker.io/v1/": {}}})
    hub = await resolve_credential("docker.io", AuthSettings(docker_config=store))
    assert (hub.username, hub.secret) == ("hubuser", "hubpass")
    # "credentials not found" is not an error: anonymous
    assert await resolve_credential("nowhere.example", AuthSettings(docker_config=store)) is ANONYMOUS


async def test_missing_helper(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"credHelpers": {"ghcr.io": "absent-helper"}})
    with pytest.raises(ConfigError, match="docker-credential-absent-helper is not on PATH"):
        await resolve_credential("ghcr.io", AuthSettings(kind="docker_config", docker_config=path))
    assert await resolve_credential("ghcr.io", AuthSettings(docker_config=path)) is ANONYMOUS


async def test_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        await resolve_credential("ghcr.io", AuthSettings(docker_config=path))


async def test_ghcr_alias_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_mod, "_ghcr_alias_warned", False)
    path = write_config(tmp_path, {"auths": {"ghcr.io": {"auth": b64("carol:pat")}}})
    with caplog.at_level(logging.WARNING, logger="ocync.registry.auth"):
        first = await resolve_credential("ghcr.io", AuthSettings(kind="ghcr", docker_config=path))
        await resolve_credential("ghcr.io", AuthSettings(kind="ghcr", docker_config=path))
    assert first.username == "carol"
    assert [r.message for r in caplog.records].count(
        "auth type 'ghcr' is deprecated: it is an alias of 'docker_config'"
    ) == 1


def test_secrets_never_in_repr() -> None:
    cred = Credential("basic", "u", "supersecret", "config")
    settings = AuthSettings(kind="basic", username="u", password="supersecret")
    token = Credential("static_token", None, "supersecret")
    for obj in (cred, settings, token):
        assert "supersecret" not in repr(obj)
    assert "supersecret" not in cred.identity and "supersecret" not in token.identity
    assert token.identity == Credential("static_token", None, "supersecret").identity
    assert token.identity != Credential("static_token", None, "other").identity


def test_token_request_shapes() -> None:
    challenge = Challenge("bearer", (("realm", "https://auth.example/token"), ("service", "reg")))
    scopes = (repository_scope("o/a", True), repository_scope("o/b", False))
    anon = token_request(challenge, scopes, ANONYMOUS)
    assert anon.method == "GET" and anon.headers == ()
    assert anon.url == (
        "https://auth.example/token?service=reg&scope=repository%3Ao%2Fa%3Apull%2Cpush"
        "&scope=repository%3Ao%2Fb%3Apull"
    )
    basic = token_request(challenge, scopes, Credential("basic", "u", "p"))
    assert basic.headers == (("Authorization", "Basic " + b64("u:p")),)
    idt = token_request(challenge, scopes[:1], Credential("identity_token", None, "rt"))
    assert idt.method == "POST" and idt.form is not None
    assert b"grant_type=refresh_token" in idt.form and b"refresh_token=rt" in idt.form
    assert "rt" not in repr(idt) and "Basic" not in repr(basic)
    with pytest.raises(Unauthorized, match="without a realm"):
        token_request(Challenge("bearer"), scopes, ANONYMOUS)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'{"token": "t", "expires_in": 300}', ("t", 300.0), id="token"),
        pytest.param(b'{"access_token": "a"}', ("a", 60.0), id="access-token-default-lifetime"),
        pytest.param(b'{"token": "t", "expires_in": -5}', ("t", 60.0), id="bad-lifetime"),
    ],
)
def test_parse_token_response(body: bytes, expected: tuple[str, float]) -> None:
    assert parse_token_response(body) == expected


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"token": ""}', b'{"token": "t\\r"}', b'{"token": "t\\u00e9"}'])
def test_parse_token_response_invalid(body: bytes) -> None:
    with pytest.raises(Unauthorized):
        parse_token_response(body)


def test_token_cache_scopes_and_expiry() -> None:
    cache = TokenCache()
    push = (repository_scope("o/a", True),)
    pull = (repository_scope("o/a", False),)
    cache.put(push, "T", 100.0, now=0.0)
    assert cache.get(pull, now=10.0) == "T"  # pull,push serves pull
    assert cache.get((repository_scope("o/b", False),), now=10.0) is None
    assert cache.get(pull, now=95.0) is None  # refreshed before expiry
    cache.put(pull, "P", 100.0, now=0.0)
    assert cache.get(push, now=1.0) == "T"
    cache.invalidate("T")
    assert cache.get(push, now=1.0) is None
    assert cache.statistics().fetched == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, auth_mod.CREDENTIAL_HELPER_TIMEOUT, id="unset"),
        pytest.param(" ", auth_mod.CREDENTIAL_HELPER_TIMEOUT, id="blank"),
        pytest.param("2.5", 2.5, id="seconds"),
        pytest.param("0", None, id="zero"),
        pytest.param("-1", None, id="negative"),
        pytest.param("nan", None, id="nan"),
        pytest.param("inf", None, id="infinite"),
        pytest.param("30s", None, id="with-unit"),
    ],
)
def test_credential_helper_timeout_from_the_environment(value: str | None, expected: float | None) -> None:
    environ = {} if value is None else {auth_mod.CREDENTIAL_HELPER_TIMEOUT_ENV: value}
    if expected is None:
        with pytest.raises(ConfigError, match="OCYNC_CREDENTIAL_HELPER_TIMEOUT must be a positive number"):
            auth_mod.credential_helper_timeout(environ)
    else:
        assert auth_mod.credential_helper_timeout(environ) == expected
