"""The running mock: listeners for the registry and its storage host, `build_registry` and
`serve_mock` (the in-process API tests and benchmarks use); `connection.py` serves each socket.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import trio

from .app import Registry
from .auth import Authenticator
from .connection import Connection, Handler
from .quirks import FaultInjector, FaultRates, MockOptions
from .store import Store


@dataclass(slots=True)
class MockRegistry:
    """A running mock: its URLs, its store, and its counters."""

    url: str
    host: str
    storage_url: str | None
    registry: Registry
    options: MockOptions
    listeners: list[trio.SocketListener] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.registry.store

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /_mock/stats``."""
        return self.registry.statistics()

    def reset_stats(self) -> None:
        self.registry.reset_stats()

    def statistics(self) -> dict[str, Any]:
        return self.stats()

    def __repr__(self) -> str:
        return f"MockRegistry({self.url}, profile={self.registry.profile.name}, storage={self.storage_url})"


def build_registry(options: MockOptions, access_log: IO[str] | None = None,
                   clock: Callable[[], float] | None = None,
                   wall_clock: Callable[[], float] | None = None) -> Registry:
    """The registry logic for ``options`` (no sockets yet); ``clock`` drives rate windows and
    ``wall_clock`` (default ``time.time``) signed-URL expiry and access-log timestamps."""
    profile = options.resolve_profile()
    rates = FaultRates(
        fault_rate=options.fault_rate,
        reset_rate=options.reset_rate,
        truncate_rate=options.truncate_rate,
        corrupt_rate=options.corrupt_rate,
        corrupt_first=options.corrupt_first,
        latency=options.latency_ms / 1000.0,
        latency_jitter=options.latency_jitter_ms / 1000.0,
    )
    auth = Authenticator(
        enabled=options.auth == "token",
        users=options.users,
        user_namespaces=options.user_namespaces,
        public=options.public,
    )
    return Registry(
        profile=profile,
        store=Store(options.storage_dir),
        auth=auth,
        faults=FaultInjector(rates, options.seed),
        access_log=access_log,
        clock=clock or trio.current_time,
        wall_clock=wall_clock or time.time,
    )


def _connection_handler(handler: Handler, registry: Registry) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def serve(stream: trio.SocketStream) -> None:
        await Connection(stream, handler, registry).serve()

    return serve


async def _open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    return await trio.open_tcp_listeners(port, host=host, backlog=1024)


def _url_of(listener: trio.SocketListener) -> tuple[str, str]:
    host, port = listener.socket.getsockname()[:2]
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{hostport}", hostport


@asynccontextmanager
async def _unwrap_single() -> AsyncIterator[None]:
    """Let an ordinary exception raised by the `async with serve_mock()` body reach the caller as
    itself, not wrapped in the nursery's ExceptionGroup (cancellations are left alone)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise


def _open_access_log(options: MockOptions) -> IO[str] | None:
    if options.access_log is None:
        return None
    return open(options.access_log, "a", encoding="utf-8")


@asynccontextmanager
async def serve_mock(options: MockOptions | None = None, *,
                     clock: Callable[[], float] | None = None,
                     wall_clock: Callable[[], float] | None = None) -> AsyncIterator[MockRegistry]:
    """Run a mock registry (and its storage host, when blob redirects are on) in a nursery.

    ``clock`` (default ``trio.current_time``) is what rate-limit windows and the stats timeline
    read; tests pass a hand-driven one to check exact window counts without sleeping.
    ``wall_clock`` (default ``time.time``) is what signed-URL expiry and the access log read.
    """
    options = options or MockOptions()
    access_log = _open_access_log(options)
    try:
        registry = build_registry(options, access_log, clock, wall_clock)
        async with _unwrap_single(), trio.open_nursery() as nursery:
            listeners = await _open_listeners(options.host, options.port)
            url, hostport = _url_of(listeners[0])
            registry.base_url = url
            storage_url = None
            all_listeners = list(listeners)
            if registry.profile.blob_redirect:
                storage_listeners = await _open_storage_listeners(options)
                storage_url, _ = _url_of(storage_listeners[0])
                registry.storage_url = storage_url
                all_listeners += storage_listeners
                nursery.start_soon(trio.serve_listeners,
                                   _connection_handler(registry.handle_storage, registry), storage_listeners)
            nursery.start_soon(trio.serve_listeners,
                               _connection_handler(registry.handle, registry), listeners)
            mock = MockRegistry(url, hostport, storage_url, registry, options, all_listeners)
            try:
                yield mock
            finally:
                nursery.cancel_scope.cancel()
    finally:
        if access_log is not None:
            access_log.close()


async def _open_storage_listeners(options: MockOptions) -> list[trio.SocketListener]:
    """The storage host lives on another loopback address when it can, so that clients comparing
    host names (Go's net/http ignores ports) see a different host, as with GHCR's CDN."""
    if options.host == "127.0.0.1":
        try:
            return await _open_listeners("127.0.0.2", options.storage_port)
        except OSError:
            pass
    return await _open_listeners(options.host, options.storage_port)
