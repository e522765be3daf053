"""WWW-Authenticate parsing (RFC 7235), table-driven."""

from __future__ import annotations

import pytest

from ocync.errors import RegistryError
from ocync.oci.challenge import Challenge, find_challenge, parse_www_authenticate


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/a:pull"',
            [Challenge("bearer", (("realm", "https://ghcr.io/token"), ("service", "ghcr.io"), ("scope", "repository:o/a:pull")))],
            id="ghcr",
        ),
        pytest.param('Basic realm="Registry Realm"', [Challenge("basic", (("realm", "Registry Realm"),))], id="basic"),
        pytest.param(
            'Basic realm="a, b", Bearer realm="https://t/x",scope="repository:a:pull,push"',
            [
                Challenge("basic", (("realm", "a, b"),)),
                Challenge("bearer", (("realm", "https://t/x"), ("scope", "repository:a:pull,push"))),
            ],
            id="two-challenges",
        ),
        pytest.param('BEARER Realm = "x\\"y" , Service=reg', [Challenge("bearer", (("realm", 'x"y'), ("service", "reg")))], id="case-escape-spaces"),
        pytest.param("Negotiate abc123==", [Challenge("negotiate", (), "abc123==")], id="token68"),
        pytest.param("Basic, Bearer realm=x", [Challenge("basic"), Challenge("bearer", (("realm", "x"),))], id="bare-scheme"),
    ],
)
def test_parse(header: str, expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param('Bearer realm="unterminated', id="unterminated"),
        pytest.param("Bearer realm=x y=z", id="missing-comma"),
        pytest.param("=x", id="no-scheme"),
        pytest.param("Bearer " + "a" * 20000, id="too-long"),
    ],
)
def test_malformed(header: str) -> None:
    with pytest.raises(RegistryError, match="malformed WWW-Authenticate"):
        parse_www_authenticate(header)


def test_accessors() -> None:
    [c] = parse_www_authenticate('Bearer realm="r",service="s",scope="p"')
    assert (c.realm, c.service, c.scope, c.get("nope")) == ("r", "s", "p", None)
    assert find_challenge([c], "bearer") is c and find_challenge([c], "basic") is None
