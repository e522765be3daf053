"""The corpus's own registry client, independent of ocync's: httpx with distribution token auth
(or Basic) on demand, and one request retried on 429 and 5xx after the registry's hint. Both the
pusher and the verifier use it, so the corpus can seed and check the registries ocync is tested
against without trusting ocync.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator

import httpx
import trio

_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="..",service="..",scope=".."` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class RegistryAuth(httpx.Auth):
    """Distribution token auth (docs.docker.com/registry/spec/auth/token) or Basic, on demand.

    Tokens are cached per (repository, push?) so only the first request of a scope sees a 401.
    """

    requires_response_body = True

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self._tokens: dict[tuple[str, bool, str], str] = {}
        self._basic = False
        self.token_requests = 0

    def _basic_header(self) -> str:
        return httpx.BasicAuth(self.username or "", self.password or "")._auth_header

    @staticmethod
    def _scope_key(request: httpx.Request) -> tuple[str, bool, str]:
        """(repository, needs push, mount source): a mount needs pull on `from` too."""
        match = _REPO_PATH.match(request.url.path)
        repo = match.group(1) if match else ""
        return repo, request.method not in ("GET", "HEAD"), request.url.params.get("from", "")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self._scope_key(request)
        if self._basic and self.username is not None:
            request.headers["Authorization"] = self._basic_header()
        elif key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic" and self.username is not None:
            self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
            return
        if scheme != "bearer" or "realm" not in params:
            return
        repo, push, source = key
        scopes = [params["scope"]] if "scope" in params else []
        if repo:
            scopes = [f"repository:{repo}:{'pull,push' if push else 'pull'}"]
            if source:
                scopes.append(f"repository:{source}:pull")
        query: list[tuple[str, str]] = []
        if "service" in params:
            query.append(("service", params["service"]))
        query.extend(("scope", s) for s in scopes)
        token_request = httpx.Request("GET", httpx.URL(params["realm"], params=query))
        if self.username is not None:
            token_request.headers["Authorization"] = self._basic_header()
        self.token_requests += 1
        token_response = yield token_request
        if token_response.status_code != 200:
            return
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            return
        self._tokens[key] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


_RETRY_HINT = re.compile(r"retry-after:\s*([0-9.]+)(ms|s)")


def _retry_delay(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after")
    if header and header.replace(".", "", 1).isdigit():
        return min(float(header), 10.0)
    match = _RETRY_HINT.search(response.text)
    if match:
        value = float(match.group(1))
        return min(value / 1000 if match.group(2) == "ms" else value, 10.0)
    return min(0.05 * 2.0**attempt, 2.0)


async def send_with_retry(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_attempts: int = 8,
    observe: Callable[[httpx.Response], None] | None = None,
) -> httpx.Response:
    """One request, retried on 429 and 5xx after the registry's hint (or a short backoff)."""
    for attempt in range(max_attempts):
        response = await client.request(method, url, content=content, headers=headers)
        if observe is not None:
            observe(response)
        retryable = response.status_code == 429 or response.status_code >= 500
        if not retryable or attempt == max_attempts - 1:
            break
        await trio.sleep(_retry_delay(response, attempt))
    return response


def make_client(
    username: str | None = None, password: str | None = None, *, timeout: float = 60.0
) -> httpx.AsyncClient:
    """An httpx client for registries on loopback: token/basic auth on demand, redirects followed."""
    auth = RegistryAuth(username, password) if username is not None else RegistryAuth()
    return httpx.AsyncClient(auth=auth, timeout=timeout, follow_redirects=True)
