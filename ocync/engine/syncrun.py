"""From a loaded config to a finished run: clients, controllers, cache, staging, engine.

One :class:`RegistryClient` per configured registry, all sharing one ControllerRegistry so
that every client using the same credentials on the same host shares one controller
(rate-control issue). The transfer cache is loaded under its advisory lock and saved on
every exit path, including an interrupt; staged blobs are removed at the end.
SIGINT/SIGTERM are watched for the whole run: before the engine starts (connecting,
checking each registry) they end the run with every mapping undone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from ocync.config import Config, RegistrySettings, ResolvedMapping
from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import CacheFile
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.layoutendpoint import LayoutEndpoint, open_layout_endpoint
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.prune import check_prune_targets
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageResult, RunReport
from ocync.engine.sharding import Shard, resolved_key, select
from ocync.engine.staging import BlobStage
from ocync.engine.tokenreuse import announce_repositories
from ocync.errors import OcyncError, with_message
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient

log = logging.getLogger("ocync.engine.syncrun")


@dataclass(frozen=True, slots=True)
class RunOptions:
    dry_run: bool = False
    drain_timeout: float = 25.0
    rate_share: float | None = None  # --rate-share; None: the config's global.rate_share
    handle_signals: bool = False
    use_cache: bool = True
    max_concurrent_transfers: int | None = None  # None: the config's value
    on_result: Callable[[ImageResult], None] | None = None
    on_blob: Callable[[int, float], None] | None = None  # (bytes, seconds) per blob copied
    on_tick: Callable[[SyncEngine], None] | None = None  # progress display, ~4 times a second
    timeout: float | None = None  # --timeout: for every registry; None: each one's timeout:
    shard: Shard | None = None  # --shard I/N: only this shard's mappings, its own cache file
    # Long-lived state a caller (``ocync watch``) keeps across runs; None: built for this run.
    controllers: ControllerRegistry | None = None
    cache: TransferCache | None = None  # in memory; still saved to the cache file at the end
    interrupt: RunInterrupt | None = None  # signals delivered by the caller (handle_signals off)
    verify_targets: bool = False  # --verify-targets: a HEAD per target tag despite the cache
    force_prune: bool = False  # --force-prune: lifts prune.max_fraction, never another rail


# Seconds a request may receive nothing before it fails, unless the config or --timeout says
# otherwise (the client's default, as `ocync copy --timeout`).
DEFAULT_TIMEOUT = 60.0
# Connecting never waits longer than this (a closed port answers at once; a dropped SYN
# would otherwise cost the whole read timeout).
MAX_CONNECT_TIMEOUT = 10.0


def client_settings(
    reg: RegistrySettings, rate_share: float | None, timeout: float | None = None
) -> ClientSettings:
    """The client's settings for one ``registries:`` entry; ``timeout`` (``--timeout``)
    overrides the entry's ``timeout:``."""
    auth = AuthSettings(
        kind=reg.auth_type,  # type: ignore[arg-type]  # validated by the config
        username=reg.username,
        password=reg.password,
        token=reg.token,
    )
    read_timeout = timeout or reg.timeout or DEFAULT_TIMEOUT
    return ClientSettings(
        auth=auth,
        profile=reg.profile,
        rate_limit=reg.rate_limit,
        max_concurrent=reg.max_concurrent,
        insecure=reg.insecure,
        rate_share=rate_share,
        min_remaining=reg.min_remaining,
        connect_timeout=min(read_timeout, MAX_CONNECT_TIMEOUT),
        read_timeout=read_timeout,
    )


def mapping_specs(
    resolved: Iterable[ResolvedMapping], *, verify_targets: bool = False
) -> list[MappingSpec]:
    """``verify_targets`` (``--verify-targets``): HEAD every target tag, as ``verify: always``
    on every target registry."""
    specs = []
    for m in resolved:
        specs.append(
            MappingSpec(
                name=m.label,
                source=m.source.name,
                source_repo=m.repo_from,
                targets=tuple(
                    TargetRepo(t.name, repo) for t, repo in zip(m.targets, m.target_repos, strict=True)
                ),
                tag_filter=m.tag_filter,
                platforms=m.platforms or (),
                artifacts=m.artifacts,
                head_first=True if m.source.head_first is None else m.source.head_first,
                verify_targets=frozenset(
                    t.name for t in m.targets if verify_targets or t.verify == "always"
                ),
                prune=m.prune if m.prune.enabled else None,
                # nothing but digest pins: no tag list needed
                list_tags=bool(m.tag_filter.glob or m.tag_filter.include),
                source_pattern=m.source_pattern,
                exclude=m.exclude,
                digests=m.digests,
                tag_template=m.tag_template,
            )
        )
    return specs


def used_registries(resolved: Sequence[ResolvedMapping]) -> dict[str, RegistrySettings]:
    out: dict[str, RegistrySettings] = {}
    for m in resolved:
        out.setdefault(m.source.name, m.source)
        for t in m.targets:
            out.setdefault(t.name, t)
    return out


async def prepare_endpoints(
    endpoints: Mapping[str, ClientEndpoint | LayoutEndpoint],
) -> dict[str, OcyncError]:
    """``GET /v2/`` on every registry at once; the ones that failed, by name (config order)."""
    down: dict[str, OcyncError] = {}

    async def one(name: str, endpoint: ClientEndpoint | LayoutEndpoint) -> None:
        try:
            await endpoint.prepare()
        except OcyncError as exc:
            down[name] = exc

    async with trio.open_nursery() as nursery:
        for name, endpoint in endpoints.items():
            nursery.start_soon(one, name, endpoint)
    return {name: down[name] for name in endpoints if name in down}


def without_registries(specs: Iterable[MappingSpec], down: Container[str]) -> list[MappingSpec]:
    """The mappings still worth running without the registries in ``down``: their dead
    targets dropped, and those whose source or every target is dead left out."""
    kept = []
    for spec in specs:
        targets = tuple(t for t in spec.targets if t.registry not in down)
        if spec.source not in down and targets:
            kept.append(dataclasses.replace(spec, targets=targets))
    return kept


async def _tick(engine: SyncEngine, on_tick: Callable[[SyncEngine], None]) -> None:
    while True:
        on_tick(engine)
        await trio.sleep(0.25)


class RunInterrupt:
    """SIGINT/SIGTERM over a whole run. Before the engine exists a signal cancels ``setup``
    (and is remembered); once :meth:`attach` is called, signals go to the engine (the first
    stops discovery and drains, a second stops at once)."""

    def __init__(self) -> None:
        self.setup = trio.CancelScope()
        self.engine: SyncEngine | None = None
        self.pending = 0

    def attach(self, engine: SyncEngine) -> None:
        self.engine = engine
        for _ in range(min(self.pending, 2)):
            engine.request_stop()

    def deliver(self, name: str, drain_timeout: float) -> None:
        if self.engine is None:
            log.warning("%s: stopping before the sync started", name)
            self.pending += 1
            self.setup.cancel()
            return
        log.warning(
            "%s: stopping discovery, draining in-flight transfers (up to %.0fs)", name, drain_timeout
        )
        self.engine.request_stop()

    async def watch(self, drain_timeout: float) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.deliver(signal.Signals(signum).name, drain_timeout)


async def run_sync(config: Config, options: RunOptions = RunOptions()) -> RunReport:
    """Run ``ocync sync`` for ``config``; the report (exit code inside) is returned."""
    if not options.handle_signals:
        return await _run_sync(config, options, options.interrupt or RunInterrupt())
    interrupt = RunInterrupt()
    report: RunReport | None = None
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(interrupt.watch, options.drain_timeout)
        try:
            report = await _run_sync(config, options, interrupt)
        except Exception as exc:  # raised as itself, not in the nursery's ExceptionGroup
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    assert report is not None
    return report


async def _run_sync(config: Config, options: RunOptions, interrupt: RunInterrupt) -> RunReport:
    resolved = _selected_mappings(config, options)
    rate_share = options.rate_share if options.rate_share is not None else config.global_.rate_share
    controllers = options.controllers or ControllerRegistry(rate_share=rate_share)
    cache_dir = config.global_.resolved_cache_dir()
    stem = options.shard.cache_stem if options.shard else "transfer-cache"
    cache_file = CacheFile(cache_dir, ttl=config.global_.cache_ttl, stem=stem)
    persist = options.use_cache and not options.dry_run and cache_file.acquire()
    cache = _run_cache(config, options, cache_file)
    stage = BlobStage(
        cache_dir / "staging" / f"run-{os.getpid()}",
        size_limit=config.global_.staging_size_limit,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            with interrupt.setup:
                endpoints = await _open_endpoints(stack, resolved, options, controllers, rate_share)
                # One /v2/ per registry up front. An unreachable registry is named once and
                # left out: the mappings and targets that do not need it still run (exit 1).
                # When nothing is left to run, the run ends with that one line (exit 2).
                down = await prepare_endpoints(endpoints)
            if interrupt.setup.cancelled_caught:  # nothing was listed
                undone = {"mappings_not_listed": len(resolved)}
                return RunReport(dry_run=options.dry_run, interrupted=True, undone=len(resolved), undone_detail=undone)
            specs = without_registries(
                mapping_specs(resolved, verify_targets=options.verify_targets), down
            )
            if down and not specs:
                first = next(iter(down.values()))
                raise with_message(first, "; ".join(str(e) for e in down.values())) from first
            announce_repositories(specs, endpoints, push=not options.dry_run)
            sources: dict[str, SourceEndpoint] = {m.source: endpoints[m.source] for m in specs}
            targets: dict[str, TargetEndpoint] = {
                t.registry: endpoints[t.registry] for m in specs for t in m.targets
            }
            engine = SyncEngine(
                specs,
                sources,
                targets,
                cache,
                _engine_options(config, options),
                stage=stage,
                on_result=options.on_result,
                on_blob=options.on_blob,
            )
            interrupt.attach(engine)
            for error in down.values():
                engine.report.add_error(f"{error}; nothing was copied to or from it")
            report = await _run_engine(engine, options.on_tick)
            report.principals = [c.statistics().to_dict() for c in controllers]
            return report
    finally:
        if persist:
            _save_cache(cache_file, cache)
        stage.cleanup()
        with contextlib.suppress(OSError):
            _remove_empty_dirs(stage.directory)


def shard_mappings(every: Sequence[ResolvedMapping], shard: Shard | None) -> list[ResolvedMapping]:
    """The mappings a run of ``shard`` handles. A pattern mapping runs in every shard: its
    repositories are sharded as it expands."""
    kept = select([m for m in every if m.source_pattern is None], resolved_key, shard)
    return [m for m in every if m.source_pattern is not None or m in kept]


def _selected_mappings(config: Config, options: RunOptions) -> list[ResolvedMapping]:
    """The config's mappings this run (shard) handles, their prune targets checked."""
    resolved = shard_mappings(config.resolve(), options.shard)
    check_prune_targets(resolved)
    return resolved


def _run_cache(config: Config, options: RunOptions, cache_file: CacheFile) -> TransferCache:
    """The run's transfer cache: the caller's, the saved one, or an empty one."""
    cache = options.cache
    if cache is None:
        cache = cache_file.load(time.time()) if options.use_cache else TransferCache()
    cache.tag_ttl = config.global_.cache_ttl  # how long a target tag's stamp is trusted
    return cache


def _engine_options(config: Config, options: RunOptions) -> EngineOptions:
    return EngineOptions(
        max_concurrent_transfers=options.max_concurrent_transfers
        or config.global_.max_concurrent_transfers,
        drain_timeout=options.drain_timeout,
        dry_run=options.dry_run,
        force_prune=options.force_prune,
        shard=options.shard,
    )


async def _open_endpoints(
    stack: contextlib.AsyncExitStack,
    resolved: Sequence[ResolvedMapping],
    options: RunOptions,
    controllers: ControllerRegistry,
    rate_share: float,
) -> dict[str, ClientEndpoint | LayoutEndpoint]:
    """An endpoint per registry the mappings use: an OCI layout or archive opened, or a
    registry client entered (both closed with ``stack``)."""
    endpoints: dict[str, ClientEndpoint | LayoutEndpoint] = {}
    written = {t.name for m in resolved for t in m.targets}
    for name, reg in used_registries(resolved).items():
        if reg.path is not None:  # type: oci-layout / oci-archive
            endpoints[name] = await stack.enter_async_context(
                open_layout_endpoint(
                    name, reg.kind, reg.path, target=name in written,
                    dry_run=options.dry_run,
                )
            )
            continue
        client = RegistryClient(
            reg.base_url,
            client_settings(reg, rate_share, options.timeout),
            controllers=controllers,
        )
        await stack.enter_async_context(client)
        endpoints[name] = ClientEndpoint(name, client)
    return endpoints


async def _run_engine(engine: SyncEngine, on_tick: Callable[[SyncEngine], None] | None) -> RunReport:
    if on_tick is None:
        return await engine.run()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_tick, engine, on_tick)
        report = await engine.run()
        nursery.cancel_scope.cancel()
    return report


def _save_cache(cache_file: CacheFile, cache: TransferCache) -> None:
    try:
        cache_file.save(cache, time.time())
    except OSError as exc:
        log.warning("could not save the transfer cache %s: %s", cache_file.path, exc.strerror)
    cache_file.release()


def _remove_empty_dirs(path: Path) -> None:
    for sub in sorted(path.rglob("*"), reverse=True):
        if sub.is_dir():
            sub.rmdir()
    path.rmdir()


__all__ = [
    "RunInterrupt",
    "RunOptions",
    "client_settings",
    "mapping_specs",
    "prepare_endpoints",
    "run_sync",
    "shard_mappings",
    "used_registries",
    "without_registries",
]
