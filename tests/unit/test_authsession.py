"""AuthSession token reuse: a multi-scope session asks the announced repositories with the
first token request (bounded by MAX_SCOPES_PER_TOKEN), concurrent first requests share that one
fetch, and a refused multi-scope token (or token request) makes the session fall back to one
repository per token.
No sockets: the token sender is a recording stand-in for the client."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
import trio.lowlevel

from ocync.errors import Unauthorized
from ocync.oci.challenge import Challenge
from ocync.registry.auth import Credential, TokenRequest
from ocync.registry.authsession import MAX_SCOPES_PER_TOKEN, AuthSession

CHALLENGE = Challenge("bearer", (("realm", "https://auth.example/token"), ("service", "example")))


class TokenServer:
    """Answers every token request with a fresh token; records the scopes each one asked.
    With ``max_scopes``, a request with more scopes is refused with 403 (a strict server)."""

    def __init__(self, max_scopes: int | None = None) -> None:
        self.asked: list[list[str]] = []
        self.max_scopes = max_scopes

    async def send(self, request: TokenRequest) -> tuple[int, bytes]:
        await trio.lowlevel.checkpoint()  # as a real request has
        self.asked.append(parse_qs(urlsplit(request.url).query).get("scope", []))
        if self.max_scopes is not None and len(self.asked[-1]) > self.max_scopes:
            return 403, b'{"errors":[{"code":"DENIED","message":"too many scopes"}]}'
        return 200, json.dumps({"token": f"t{len(self.asked)}", "expires_in": 300}).encode()


def session(server: TokenServer, *, multi_scope: bool) -> AuthSession:
    auth = AuthSession("example", server.send, multi_scope=multi_scope)
    auth.credential = Credential("basic", "alice", "pat")
    auth.challenge = CHALLENGE
    return auth


async def test_one_token_serves_every_announced_repository() -> None:
    server = TokenServer()
    auth = session(server, multi_scope=True)
    for repo in ("a", "b", "c"):
        auth.want_repository(repo)
    auth.want_push("mirror/a")
    tokens = {await auth.token_for(auth.scopes(repo)) for repo in ("b", "a", "c", "mirror/a")}
    assert tokens == {"t1"}
    # The wanted scope first, then the others in the order they were announced.
    assert server.asked == [["repository:b:pull", "repository:a:pull", "repository:c:pull",
                             "repository:mirror/a:pull,push"]]


async def test_without_multi_scope_each_repository_has_its_own_token() -> None:
    server = TokenServer()
    auth = session(server, multi_scope=False)
    for repo in ("a", "b"):
        auth.want_repository(repo)
    assert [await auth.token_for(auth.scopes(repo)) for repo in ("a", "b", "a")] == ["t1", "t2", "t1"]
    assert server.asked == [["repository:a:pull"], ["repository:b:pull"]]


async def test_concurrent_first_requests_share_one_fetch() -> None:
    server = TokenServer()
    auth = session(server, multi_scope=True)
    repos = [f"r{i}" for i in range(5)]
    for repo in repos:
        auth.want_repository(repo)
    got: dict[str, str] = {}

    async def one(repo: str) -> None:
        got[repo] = await auth.token_for(auth.scopes(repo))

    async with trio.open_nursery() as nursery:
        for repo in repos:
            nursery.start_soon(one, repo)
    assert set(got.values()) == {"t1"} and len(server.asked) == 1, server.asked


async def test_a_token_request_carries_at_most_the_bounded_number_of_scopes() -> None:
    server = TokenServer()
    auth = session(server, multi_scope=True)
    repos = [f"r{i:02}" for i in range(MAX_SCOPES_PER_TOKEN + 3)]
    for repo in repos:
        auth.want_repository(repo)
    for repo in repos:
        await auth.token_for(auth.scopes(repo))
    assert [len(scopes) for scopes in server.asked] == [MAX_SCOPES_PER_TOKEN, 3]
    assert sorted(s for scopes in server.asked for s in scopes) == [f"repository:{r}:pull" for r in repos]


async def test_a_refused_multi_scope_token_falls_back_to_one_repository_per_token() -> None:
    server = TokenServer()
    auth = session(server, multi_scope=True)
    for repo in ("a", "b"):
        auth.want_repository(repo)
    first = await auth.token_for(auth.scopes("a"))
    # The registry answered 401 to "b" with the token asked for both: the client re-asks.
    second = await auth.token_for(auth.scopes("b"), stale=first)
    assert (first, second) == ("t1", "t2")
    assert not auth.multi_scope
    assert server.asked == [["repository:a:pull", "repository:b:pull"], ["repository:b:pull"]]


async def test_a_refused_multi_scope_request_is_asked_again_for_the_wanted_scope() -> None:
    server = TokenServer(max_scopes=1)
    auth = session(server, multi_scope=True)
    for repo in ("a", "b"):
        auth.want_repository(repo)
    assert await auth.token_for(auth.scopes("a")) == "t2"
    assert await auth.token_for(auth.scopes("b")) == "t3"
    assert not auth.multi_scope
    assert server.asked == [["repository:a:pull", "repository:b:pull"], ["repository:a:pull"], ["repository:b:pull"]]


async def test_a_scope_refused_everywhere_fails_with_one_clear_error() -> None:
    server = TokenServer(max_scopes=0)  # 403 to everything
    auth = session(server, multi_scope=True)
    auth.want_repository("b")
    with pytest.raises(Unauthorized, match="token endpoint answered HTTP 403"):
        await auth.token_for(auth.scopes("a"))
    assert len(server.asked) == 2  # the multi-scope request, then the wanted scope alone


async def test_refused_credentials_are_not_asked_again() -> None:
    async def refuse(request: TokenRequest) -> tuple[int, bytes]:
        asked.append(request.url)
        return 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad password"}]}'

    asked: list[str] = []
    auth = AuthSession("example", refuse, multi_scope=True)
    auth.credential = Credential("basic", "alice", "wrong")
    auth.challenge = CHALLENGE
    auth.want_repository("b")
    with pytest.raises(Unauthorized, match="token endpoint answered HTTP 401"):
        await auth.token_for(auth.scopes("a"))
    assert len(asked) == 1 and auth.multi_scope
