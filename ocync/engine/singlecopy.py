"""``ocync copy``: one image (a tag or a digest) as a one-mapping run of the sync engine.

The same discovery, blob placement, mounts, statistics and results as ``ocync sync``, with
an in-memory transfer cache, no staging and no referrers; :class:`OneImage` says what
differs (the source first, the destination's tag or digest, an expected digest).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

from ocync.config import Config
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import ArtifactPolicy, MappingSpec, OneImage, TargetRepo
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.layoutendpoint import layout_location, open_layout_endpoint
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageResult, ImageStatus, RunReport
from ocync.engine.syncrun import client_settings
from ocync.errors import OcyncError, with_message
from ocync.oci.platform import Platform
from ocync.oci.reference import Reference
from ocync.oci.tagfilter import TagFilter
from ocync.registry.client import ClientSettings
from ocync.registry.pool import ClientPool


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    """How to reach one side of a copy: the registry's URL (or host) and client settings."""

    url: str
    settings: ClientSettings


def registry_access(
    host: str,
    flags: ClientSettings,
    config: Config | None = None,
    *,
    timeout: float | None = None,
) -> RegistryAccess:
    """``host`` with the command line's settings (``flags``), or, when ``config`` has a
    registry serving ``host``, that entry's URL, credentials, profile, caps and timeout
    (as ``ocync sync`` uses them); the command line's profile, retries, ``--insecure``,
    ``--authfile`` and ``--timeout`` (when given) still apply over it."""
    reg = config.registry_for_host(host) if config is not None else None
    if reg is None or config is None:
        return RegistryAccess(host, flags)
    settings = client_settings(reg, config.global_.rate_share, timeout)
    auth = settings.auth
    if flags.auth.docker_config is not None:
        auth = dataclasses.replace(auth, docker_config=flags.auth.docker_config)
    return RegistryAccess(
        reg.base_url,
        dataclasses.replace(
            settings,
            auth=auth,
            profile=flags.profile or settings.profile,
            attempts=flags.attempts,
            insecure=settings.insecure or flags.insecure,
        ),
    )


@dataclass(frozen=True, slots=True)
class CopyRequest:
    """Copy ``source`` (its tag or digest) to ``destination``'s repository under
    ``target_tag`` (None: by digest; ``destination.digest``, when set, must be that digest)."""

    source: Reference
    destination: Reference
    target_tag: str | None
    platforms: tuple[Platform, ...] = ()

    def mapping(self) -> MappingSpec:
        expected = self.destination.digest
        return one_image_mapping(
            self.source.registry,
            self.source.repository,
            self.source.identifier,
            self.destination.registry,
            self.destination.repository,
            self.target_tag,
            platforms=self.platforms,
            expected_digest=str(expected) if expected is not None else None,
        )


def one_image_mapping(
    source: str,
    source_repo: str,
    ref: str,
    target: str,
    target_repo: str,
    target_tag: str | None,
    *,
    platforms: tuple[Platform, ...] = (),
    expected_digest: str | None = None,
) -> MappingSpec:
    """The mapping of one image: ``source/source_repo`` at ``ref`` (a tag or digest) to
    ``target/target_repo`` under ``target_tag`` (None: by digest)."""
    return MappingSpec(
        name="copy",
        source=source,
        source_repo=source_repo,
        targets=(TargetRepo(target, target_repo),),
        # one literal include: nothing is listed, the filter keeps exactly this reference
        tag_filter=TagFilter(glob=(), include=(ref,), builtin_soft_excludes=False),
        platforms=platforms,
        artifacts=ArtifactPolicy(enabled=False),  # one tag or digest, not its referrers
        list_tags=False,
        one_image=OneImage(target_tag, expected_digest),
    )


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    """What the copy did: the image's result and the run's report (requests, warnings)."""

    result: ImageResult
    report: RunReport
    trimmed_platforms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        summary = self.report.to_dict()["summary"]
        return {
            "status": r.status.value,
            "digest": r.digest,
            "blobs_transferred": r.blobs_transferred,
            "blobs_mounted": r.blobs_mounted,
            "blobs_skipped": r.blobs_skipped,
            "bytes": r.bytes_transferred,
            "trimmed_platforms": list(self.trimmed_platforms),
            "warnings": list(self.report.warnings),
            "requests": summary["requests"],
            "requests_by_kind": summary["requests_by_kind"],
            "throttled": summary["throttled"],
            "controllers": self.report.to_dict()["controllers"],
        }


async def copy_one(
    request: CopyRequest, source: RegistryAccess, destination: RegistryAccess, *, seed: int | None = None
) -> CopyOutcome:
    """Copy one image; its failure is raised (an :class:`OcyncError`, exit code inside)."""
    async with ClientPool(seed=seed) as pool, contextlib.AsyncExitStack() as stack:
        # An OCI layout side (``oci:PATH``, its "registry" is its layout key) is a file tree.
        src_layout = layout_location(request.source.registry)
        dst_layout = layout_location(request.destination.registry)
        if src_layout is not None or dst_layout is not None:
            src_ep: SourceEndpoint
            dst_ep: TargetEndpoint
            if src_layout is not None:
                src_ep = await stack.enter_async_context(
                    open_layout_endpoint(request.source.registry, *src_layout, target=False)
                )
            else:
                src_ep = ClientEndpoint(request.source.registry, await pool.client(source.url, source.settings))
            if dst_layout is not None:
                dst_ep = await stack.enter_async_context(
                    open_layout_endpoint(request.destination.registry, *dst_layout, target=True)
                )
            else:
                dst_client = await pool.client(destination.url, destination.settings)
                dst_ep = ClientEndpoint(request.destination.registry, dst_client)
            return await run_one(request.mapping(), src_ep, dst_ep)
        src_client = await pool.client(source.url, source.settings)
        src = ClientEndpoint(request.source.registry, src_client)
        dst_client = await pool.client(destination.url, destination.settings)
        # The same client on both sides (one registry, one profile): one endpoint, so its
        # requests are counted once.
        dst = src if dst_client is src.client else ClientEndpoint(request.destination.registry, dst_client)
        return await run_one(request.mapping(), src, dst)


async def run_one(mapping: MappingSpec, source: SourceEndpoint, target: TargetEndpoint) -> CopyOutcome:
    """Run the one-image ``mapping`` from ``source`` to ``target``; raise its failure."""
    engine = SyncEngine(
        [mapping],
        {mapping.source: source},
        {mapping.targets[0].registry: target},
        TransferCache(),
        EngineOptions(max_concurrent_transfers=1),
    )
    report = await engine.run()
    if not report.results:
        raise OcyncError(report.errors[0] if report.errors else "nothing was copied")
    [result] = report.results
    if result.status is ImageStatus.DEFERRED and result.error is not None:
        raise with_message(result.error, f"{result.source}: {result.reason}") from result.error
    if result.status is ImageStatus.FAILED:
        raise result.error if result.error is not None else OcyncError(result.reason)
    outcomes = engine.discoveries[0].outcomes
    item = outcomes[0].item if outcomes else None
    return CopyOutcome(result, report, item.trimmed if item is not None else ())


__all__ = [
    "CopyOutcome",
    "CopyRequest",
    "RegistryAccess",
    "copy_one",
    "one_image_mapping",
    "registry_access",
    "run_one",
]
