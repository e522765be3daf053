"""``ocync analyze``: what a cold sync of a config would move, from manifests alone.

Pulls manifests only (tag lists, HEAD-free GETs of each selected tag and its children) and
reports unique vs referenced blobs and bytes, the most shared layers, mount opportunities
(a blob needed by several repositories of one target registry, inside the profile's mount
scope, is uploaded once and mounted elsewhere), and the requests the sync needs per target
registry with the minutes that takes under each principal's cap; for a source with a pull
quota (Docker Hub), the pulls a cold sync needs against those that remain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from ocync.config import Config
from ocync.config.resolve import RegistrySettings
from ocync.engine.digestpins import pin_spec
from ocync.engine.discovery import ImageTree, MappingSpec, fetch_tree, select_tags
from ocync.engine.endpoints import CatalogSource, SourceEndpoint
from ocync.engine.layoutendpoint import LayoutEndpoint, open_layout_endpoint
from ocync.engine.namespaces import expand_spec
from ocync.engine.nursery import run_all
from ocync.engine.plan import mount_group
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import redact
from ocync.engine.shardcost import ShardSplit, shard_split
from ocync.engine.syncrun import client_settings, mapping_specs, used_registries
from ocync.errors import ConfigError, OcyncError, Unauthorized
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.client import RegistryClient
from ocync.registry.profiles import RegistryProfile

# Requests per uploaded blob by upload strategy (client issue): POST + PUT; POST + PATCH +
# PUT on GHCR; POST + buffered PUT.
UPLOAD_REQUESTS = {"stream_put": 2, "single_patch": 3, "monolithic": 2}


@dataclass(slots=True)
class TargetAnalysis:
    registry: str
    profile: str
    mount_scope: str
    cap: str | None
    images: int = 0
    manifests: int = 0
    referenced_blobs: int = 0
    referenced_bytes: int = 0
    uploads: int = 0  # unique (blob, mount scope group) pairs
    upload_bytes: int = 0
    mounts: int = 0
    requests: int = 0
    minutes_under_cap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Analysis:
    tags: int = 0
    images: int = 0
    unique_blobs: int = 0
    unique_bytes: int = 0
    referenced_blobs: int = 0
    referenced_bytes: int = 0
    shared_layers: list[dict[str, Any]] = field(default_factory=list)
    source_requests: int = 0
    targets: list[TargetAnalysis] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    auth_errors: int = 0
    shards: ShardSplit | None = None  # --shards N
    pull_quotas: list[PullQuotaAnalysis] = field(default_factory=list)  # sources with a pull quota

    def exit_code(self) -> int:
        """0 clean; 1 some tags or mappings failed; 2 nothing could be read; 4 when every
        error was an authentication failure (as ``sync`` and ``auth check`` say)."""
        if not self.errors:
            return 0
        if self.auth_errors == len(self.errors):
            return 4
        return 1 if self.tags else 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "tags": self.tags,
            "images": self.images,
            "unique_blobs": self.unique_blobs,
            "unique_bytes": self.unique_bytes,
            "referenced_blobs": self.referenced_blobs,
            "referenced_bytes": self.referenced_bytes,
            "shared_layers": self.shared_layers,
            "source_requests": self.source_requests,
            "targets": [t.to_dict() for t in self.targets],
            "errors": self.errors,
            **({"shards": self.shards.to_dict()} if self.shards else {}),
            **({"pull_quotas": [q.to_dict() for q in self.pull_quotas]} if self.pull_quotas else {}),
        }

    def render_text(self) -> str:
        mib = 1024 * 1024
        lines = [
            f"{self.tags} tags, {self.images} (tag, target) images",
            f"blobs: {self.unique_blobs} unique ({self.unique_bytes / mib:.1f} MiB) of "
            f"{self.referenced_blobs} referenced ({self.referenced_bytes / mib:.1f} MiB)",
            f"source: about {self.source_requests} requests (manifest GETs, one GET per unique blob)",
        ]
        for t in self.targets:
            cap = f"cap {t.cap}: {t.minutes_under_cap:.1f} min" if t.cap and t.minutes_under_cap is not None else "no known cap"
            lines.append(
                f"target {t.registry} ({t.profile}, mounts: {t.mount_scope}): {t.uploads} uploads "
                f"({t.upload_bytes / mib:.1f} MiB), {t.mounts} mounts, {t.manifests} manifest pushes, "
                f"about {t.requests} requests; {cap}"
            )
        if self.shared_layers:
            lines.append("most shared layers:")
            for s in self.shared_layers:
                lines.append(f"  {s['digest'][:19]} {s['size'] / mib:.1f} MiB in {s['images']} images")
        lines += [q.render_line() for q in self.pull_quotas]
        lines += self.shards.render_lines() if self.shards else []
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class PullQuotaAnalysis:
    """A source with a pull quota (Docker Hub): the manifest GETs a cold sync needs from it
    against what remains, after ``spent`` pulls of this analysis itself."""

    registry: str
    needed: int
    remaining: int | None  # None: unlimited (the registry sent no quota)
    min_remaining: int
    spent: int
    limit: int | None = None
    window: float | None = None

    @property
    def short_by(self) -> int:
        if self.remaining is None:
            return 0
        return max(0, self.needed - max(0, self.remaining - self.min_remaining))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "short_by": self.short_by}

    def render_line(self) -> str:
        if self.remaining is None:
            return f"source {self.registry}: {self.needed} pulls needed, no pull limit announced"
        verdict = f"short by {self.short_by}: a sync defers what does not fit" if self.short_by else "fits"
        return (f"source {self.registry}: {self.needed} pulls needed, {self.remaining} remaining "
                f"(min_remaining {self.min_remaining}; this analysis spent {self.spent}): {verdict}")


@dataclass(slots=True)
class _Read:
    """What the network part of the analysis brought back."""

    trees: list[tuple[MappingSpec, str, ImageTree]]
    source_requests: int
    profiles: dict[str, RegistryProfile]
    pull_quotas: list[PullQuotaAnalysis]
    layouts: frozenset[str]  # registries that are OCI layouts (files written, no requests)


async def analyze(
    config: Config, *, concurrency: int = 16, request_timeout: float | None = None,
    shards: int | None = None,
) -> Analysis:
    resolved = config.resolve()
    specs = mapping_specs(resolved)
    registries = used_registries(resolved)
    result = Analysis()
    read = await _read_manifests(specs, registries, result, concurrency, request_timeout)
    sizes, refs = _tally_targets(result, read.trees, registries, read.profiles, read.layouts)
    result.unique_blobs = len(sizes)
    result.unique_bytes = sum(sizes.values())
    result.referenced_blobs = sum(refs.values())
    result.referenced_bytes = sum(sizes[d] * n for d, n in refs.items())
    result.source_requests = read.source_requests + len(sizes)
    result.shared_layers = [
        {"digest": d, "size": sizes[d], "images": n} for d, n in refs.most_common(5) if n > 1
    ]
    result.pull_quotas = read.pull_quotas
    if shards:
        # The repositories of pattern mappings are not in the split (each shard lists the
        # catalog and keeps its share at run time).
        literal = [(m, s) for m, s in zip(resolved, specs, strict=True) if s.source_pattern is None]
        names = {s.name for _, s in literal}
        result.shards = shard_split(
            [m for m, _ in literal], [s for _, s in literal],
            [(s, t.blobs()) for s, _, t in read.trees if s.name in names], shards,
        )
    return result


async def _open_read_endpoints(
    stack: contextlib.AsyncExitStack, specs: list[MappingSpec],
    registries: dict[str, RegistrySettings], request_timeout: float | None,
) -> dict[str, ClientEndpoint | LayoutEndpoint]:
    """An endpoint per registry, entered on ``stack``: a layout opened read only, or a client."""
    controllers = ControllerRegistry()
    endpoints: dict[str, ClientEndpoint | LayoutEndpoint] = {}
    written = {t.registry for m in specs for t in m.targets}
    for name, reg in registries.items():
        if reg.path is not None:  # an OCI layout: read only; a target needs not exist yet
            endpoints[name] = await stack.enter_async_context(
                open_layout_endpoint(name, reg.kind, reg.path, target=name in written, dry_run=True)
            )
            continue
        client = await stack.enter_async_context(
            RegistryClient(reg.base_url, client_settings(reg, None, request_timeout), controllers=controllers)
        )
        endpoints[name] = ClientEndpoint(name, client)
    return endpoints


async def _read_manifests(
    specs: list[MappingSpec], registries: dict[str, RegistrySettings], result: Analysis,
    concurrency: int, request_timeout: float | None,
) -> _Read:
    """Every selected tag's manifest tree (errors go to ``result``), and the sources' quotas."""
    trees: list[tuple[MappingSpec, str, ImageTree]] = []
    limiter = trio.CapacityLimiter(concurrency)
    async with contextlib.AsyncExitStack() as stack:
        endpoints = await _open_read_endpoints(stack, specs, registries, request_timeout)

        async def one_tag(spec: MappingSpec, tag: str) -> None:
            async with limiter:
                try:
                    tree, _ = await fetch_tree(
                        endpoints[spec.source], spec.source_repo, tag, spec.platforms
                    )
                except OcyncError as exc:
                    result.errors.append(f"{spec.source_label(tag)}: {redact(str(exc))}")
                    result.auth_errors += isinstance(exc, Unauthorized)
                    return
            trees.append((spec, tag, tree))

        async def one_mapping(spec: MappingSpec) -> None:
            try:
                if spec.source_pattern is not None:  # every repository its catalog expands to
                    concrete = await list_namespace(spec, endpoints[spec.source], limiter)
                    await run_all(functools.partial(one_mapping, c) for c in concrete)
                    return
                async with limiter:
                    _, selection, _ = await select_tags(spec, endpoints[spec.source])
            except OcyncError as exc:
                result.errors.append(f"mapping {spec.name}: {redact(str(exc))}")
                result.auth_errors += isinstance(exc, Unauthorized)
                return
            await run_all(
                [
                    *(functools.partial(one_tag, spec, t) for t in selection.tags),
                    *(functools.partial(one_tag, pin_spec(spec, d), d) for d in spec.digests),
                ]
            )

        await run_all(functools.partial(one_mapping, s) for s in specs)
        source_requests = sum(sum(ep.request_counts().values()) for ep in endpoints.values())
        profiles = {
            name: ep.profile if isinstance(ep, LayoutEndpoint) else ep.client.profile
            for name, ep in endpoints.items()
        }
        quotas = _pull_quotas(trees, endpoints, {spec.source for spec in specs})
    layouts = frozenset(n for n, ep in endpoints.items() if isinstance(ep, LayoutEndpoint))
    return _Read(trees, source_requests, profiles, quotas, layouts)


def _pull_quotas(
    trees: list[tuple[MappingSpec, str, ImageTree]],
    endpoints: Mapping[str, ClientEndpoint | LayoutEndpoint],
    sources: set[str],
) -> list[PullQuotaAnalysis]:
    """Per source with a pull quota: a cold sync GETs each tag's root and every child once."""
    needed: Counter[str] = Counter()
    for spec, _, tree in trees:
        needed[spec.source] += 1 + len(tree.children)
    out = []
    for name, ep in endpoints.items():
        quota = None if isinstance(ep, LayoutEndpoint) else ep.client.pull_quota
        if quota is None or name not in sources:
            continue
        stats = quota.statistics()
        out.append(PullQuotaAnalysis(name, needed[name], stats.remaining, stats.min_remaining,
                                     stats.pulls_sent, stats.limit, stats.window))
    return out


def _tally_targets(
    result: Analysis, trees: list[tuple[MappingSpec, str, ImageTree]],
    registries: dict[str, RegistrySettings], profiles: dict[str, RegistryProfile],
    layouts: frozenset[str],
) -> tuple[dict[str, int], Counter[str]]:
    """Fill ``result``'s per-target figures; return blob sizes and reference counts."""
    sizes: dict[str, int] = {}
    refs: Counter[str] = Counter()
    per_target: dict[str, TargetAnalysis] = {}
    groups_seen: dict[str, set[str]] = {}
    for spec, _, tree in trees:
        result.tags += 1
        blobs = tree.blobs()
        for d in blobs:
            sizes[str(d.digest)] = d.size
        for target in spec.targets:
            profile = profiles[target.registry]
            scope = profile.mount_scope
            reg = registries[target.registry]
            cap = reg.rate_limit or profile.documented_cap
            ta = per_target.setdefault(
                target.registry, TargetAnalysis(target.registry, profile.name, scope.value, cap)
            )
            result.images += 1
            ta.images += 1
            ta.manifests += 1 + len({str(c.digest) for c in tree.children})
            seen = groups_seen.setdefault(target.registry, set())
            for d in blobs:
                digest = str(d.digest)
                refs[digest] += 1
                ta.referenced_blobs += 1
                ta.referenced_bytes += d.size
                here = f"{target.registry}/{target.repo}@{digest}"
                if here in seen:
                    continue  # another tag of the same repository: already present
                seen.add(here)
                # a layout's blobs/ serves every repository in it: one copy per layout
                shared = target.registry in layouts
                group = target.registry if shared else mount_group(scope, target.registry, target.repo)
                key = f"{group}|{digest}"
                if key in seen and shared:
                    continue
                if key in seen:
                    ta.mounts += 1
                else:
                    seen.add(key)
                    ta.uploads += 1
                    ta.upload_bytes += d.size
    for ta in per_target.values():
        _estimate_requests(ta, profiles[ta.registry], layouts)
        result.targets.append(ta)
    return sizes, refs


def _estimate_requests(ta: TargetAnalysis, profile: RegistryProfile, layouts: frozenset[str]) -> None:
    """The requests a target's share of the sync costs, and the minutes they take under its cap."""
    per_upload = UPLOAD_REQUESTS.get(profile.upload_strategy, 3)
    # existence check per upload: none extra with a self-mount probe (its 202 session is
    # the upload's POST), one HEAD otherwise
    check = 0 if profile.mount_probe_ok else 1
    ta.requests = ta.images + ta.manifests + ta.uploads * (per_upload + check) + ta.mounts
    if ta.registry in layouts:
        ta.requests = 0  # files written, no request sent; upload_bytes is the size to carry
    if ta.cap:
        rate = parse_rate(ta.cap)
        ta.minutes_under_cap = ta.requests / (rate.count / rate.period) / 60


async def list_namespace(
    spec: MappingSpec, source: SourceEndpoint, limiter: trio.CapacityLimiter
) -> list[MappingSpec]:
    """The concrete mappings of a pattern mapping, every catalog page listed (analyze reads
    the whole namespace before it sums; the sync streams it instead)."""
    if not isinstance(source, CatalogSource):
        raise ConfigError(f"source {spec.source} cannot list its repositories")
    out: list[MappingSpec] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        async with limiter:
            repos, cursor = await source.catalog_page(cursor)
        out += [c for c in (expand_spec(spec, r) for r in repos) if c is not None]
        if cursor is None or cursor in seen:  # a Link loop (a broken registry) ends it
            return out
        seen.add(cursor)


__all__ = ["Analysis", "PullQuotaAnalysis", "TargetAnalysis", "analyze", "list_namespace"]
