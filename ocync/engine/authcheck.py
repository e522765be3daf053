"""``ocync auth check``: verify every registry's credentials before a long sync does.

Per registry: ``GET /v2/`` (reachable, learns the challenge); per source repository one tag
listing (a pull-scoped token, read access); per target repository an upload session opened
and deleted at once (a push-scoped token; GHCR hands out pull-only tokens silently, so only
a write request proves write access). Nothing is written. Errors are one line each, secrets
never appear in them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import trio

from ocync.config import Config
from ocync.engine.report import redact
from ocync.engine.syncrun import client_settings, used_registries
from ocync.errors import NotFound, OcyncError, Unauthorized
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.client import RegistryClient


@dataclass(frozen=True, slots=True)
class AuthCheck:
    registry: str
    repository: str  # "" for the registry itself
    access: str  # "reach" | "pull" | "push"
    ok: bool
    identity: str = ""
    error: str = ""
    auth_failure: bool = False
    note: str = ""

    def line(self) -> str:
        where = f"{self.registry}/{self.repository}" if self.repository else self.registry
        if self.ok:
            note = f" ({self.note})" if self.note else ""
            return f"ok      {where} ({self.access}) as {self.identity}{note}"
        return f"FAILED  {where} ({self.access}): {self.error}"

    def to_dict(self) -> dict[str, object]:
        return {
            "registry": self.registry,
            "repository": self.repository,
            "access": self.access,
            "ok": self.ok,
            "identity": self.identity,
            "error": self.error,
            "note": self.note,
        }


def exit_code(checks: list[AuthCheck]) -> int:
    if all(c.ok for c in checks):
        return 0
    if any(c.auth_failure for c in checks):
        return 4
    return 2


async def _one(client: RegistryClient, name: str, repo: str, access: str) -> AuthCheck:
    try:
        if access == "reach":
            if not await client.ping():
                raise OcyncError(f"{client.base_url}/v2/ did not answer 200 or 401")
        elif access == "pull":
            await client.list_tags(repo)
        else:
            session = await client.start_upload(repo)
            await client.cancel_upload(session)
    except NotFound:
        # The credentials were accepted; the repository just does not exist (yet).
        return AuthCheck(name, repo, access, True, client.credential.identity,
                         note="repository not found")
    except OcyncError as exc:
        return AuthCheck(name, repo, access, False, client.credential.identity, redact(str(exc)),
                         isinstance(exc, Unauthorized))
    return AuthCheck(name, repo, access, True, client.credential.identity)


async def check_auth(config: Config, *, request_timeout: float | None = None) -> list[AuthCheck]:
    resolved = config.resolve()
    registries = used_registries(resolved)
    for name in config.registries:
        if name not in registries:
            registries[name] = config.registry(name)
    # OCI layouts and archives take no credentials: nothing to check there
    registries = {name: reg for name, reg in registries.items() if reg.path is None}
    pulls = {(m.source.name, m.repo_from) for m in resolved if m.source.name in registries}
    pushes = {
        (t.name, repo) for m in resolved for t, repo in zip(m.targets, m.target_repos, strict=True)
        if t.name in registries
    }
    controllers = ControllerRegistry()
    results: list[AuthCheck] = []
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, RegistryClient] = {}
        for name, reg in registries.items():
            clients[name] = await stack.enter_async_context(
                RegistryClient(reg.base_url, client_settings(reg, None, request_timeout), controllers=controllers)
            )
        for name, client in clients.items():
            results.append(await _one(client, name, "", "reach"))

        async def run(name: str, repo: str, access: str) -> None:
            results.append(await _one(clients[name], name, repo, access))

        async with trio.open_nursery() as nursery:
            for name, repo in sorted(pulls):
                nursery.start_soon(run, name, repo, "pull")
            for name, repo in sorted(pushes):
                nursery.start_soon(run, name, repo, "push")
    order = {"reach": 0, "pull": 1, "push": 2}
    return sorted(results, key=lambda c: (c.registry, order[c.access], c.repository))


__all__ = ["AuthCheck", "check_auth", "exit_code"]
