"""``ocync expand --catalog``: the repositories each pattern mapping expands to now, listed
from the source registries' catalogs (every page), for a config that names them one by one.
As in a sync (ocync.engine.namespaces.TargetClaims), a target repository a literal mapping
writes is left to it, so the printed config passes the overlap check.
"""

from __future__ import annotations

import contextlib

import trio

from ocync.config import Config
from ocync.engine.analyze import list_namespace
from ocync.engine.namespaces import TargetClaims
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.syncrun import client_settings, mapping_specs
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.client import RegistryClient

Expansion = list[tuple[str, tuple[str, ...] | None]]


async def pattern_repositories(
    config: Config, request_timeout: float | None = None
) -> dict[int, Expansion]:
    """Config index of each pattern mapping -> (source repository, the target registries it
    keeps, None: all) for each repository it expands to."""
    resolved = config.resolve()
    specs = mapping_specs(resolved)
    hosts = {r.name: r.host for m in resolved for r in (m.source, *m.targets)}
    claims = TargetClaims((s for s in specs if s.source_pattern is None), hosts)
    out: dict[int, Expansion] = {}
    limiter = trio.CapacityLimiter(4)
    async with contextlib.AsyncExitStack() as stack:
        endpoints: dict[str, ClientEndpoint] = {}
        controllers = ControllerRegistry()
        for m, spec in zip(resolved, specs, strict=True):
            if spec.source_pattern is None:
                continue
            endpoint = endpoints.get(m.source.name)
            if endpoint is None:
                client = await stack.enter_async_context(
                    RegistryClient(
                        m.source.base_url,
                        client_settings(m.source, None, request_timeout),
                        controllers=controllers,
                    )
                )
                endpoint = endpoints[m.source.name] = ClientEndpoint(m.source.name, client)
                await endpoint.prepare()
            found: Expansion = []
            for concrete in await list_namespace(spec, endpoint, limiter):
                kept, _ = claims.claim(concrete)
                if kept is not None:
                    same = len(kept.targets) == len(concrete.targets)
                    found.append((kept.source_repo, None if same else tuple(t.registry for t in kept.targets)))
            out[m.index] = found
    return out


__all__ = ["pattern_repositories"]
