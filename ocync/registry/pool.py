"""ClientPool: the clients of one run, one per (registry, settings), sharing one
:class:`ControllerRegistry` so a host and credential identity keep one rate budget.
"""

from __future__ import annotations

from types import TracebackType

import trio

from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.client import ClientSettings, RegistryClient
from ocync.registry.requeststats import ClientStatistics


class ClientPool:
    """Builds clients that share one :class:`ControllerRegistry`: the same host and
    credential identity get the same controller (and so one rate budget) everywhere.

    ``async with ClientPool() as pool: client = await pool.client("ghcr.io", settings)``;
    clients are cached per (registry, settings) and closed when the pool exits."""

    def __init__(self, controllers: ControllerRegistry | None = None, *, seed: int | None = None) -> None:
        self.controllers = controllers or ControllerRegistry()
        self._clients: dict[tuple[str, ClientSettings], RegistryClient] = {}
        self._seed = seed
        self._lock = trio.Lock()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def client(self, registry: str, settings: ClientSettings | None = None) -> RegistryClient:
        settings = settings or ClientSettings()
        key = (registry, settings)
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = RegistryClient(registry, settings, controllers=self.controllers, seed=self._seed)
                await client.__aenter__()
                self._clients[key] = client
            return client

    def statistics(self) -> ClientStatistics:
        return sum((c.statistics() for c in self._clients.values()), ClientStatistics())

    def __repr__(self) -> str:
        return f"<ClientPool clients={len(self._clients)} {self.controllers!r}>"


__all__ = ["ClientPool"]
