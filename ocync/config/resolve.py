"""A validated config resolved for the engine: plain frozen dataclasses, no pydantic.

Defaults and target groups are applied here, registry URLs become host and scheme, Docker
Hub names get their ``library/`` prefix, so nothing downstream needs the models.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ocync.errors import ConfigError
from ocync.oci.digestpin import is_digest
from ocync.oci.platform import Platform
from ocync.oci.reference import api_host, is_loopback_host, normalise_registry, normalise_repository
from ocync.oci.repopattern import RepoPattern, is_pattern
from ocync.oci.tagfilter import TagFilter

if TYPE_CHECKING:
    from ocync.config.models import (
        ArtifactsConfig,
        Config,
        MappingConfig,
        PruneConfig,
        RegistryConfig,
        TagsConfig,
    )


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """One ``registries:`` entry, resolved. Secrets are kept out of ``repr``."""

    name: str
    host: str  # normalised: "docker.io" for every Docker Hub alias, "127.0.0.1:5000"
    scheme: str  # "https", or "http" when written so, insecure, or a loopback host
    # anonymous | basic | static_token | docker_config ("ghcr" folded in) | None: unset, i.e.
    # the docker config's entry for the host if there is one, else anonymous.
    auth_type: str | None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    max_concurrent: int | None = None
    rate_limit: str | None = None
    head_first: bool | None = None
    min_remaining: int = 0  # pulls left unspent under a pull quota (Docker Hub)
    verify: str = "cached"  # as a target: "always" HEADs each tag, "cached" trusts the cache
    insecure: bool = False
    profile: str | None = None  # ocync.registry.profiles name; None: chosen by host
    timeout: float | None = None  # seconds without a byte before a request fails; None: 60
    kind: str = "registry"  # registry | oci-layout | oci-archive
    path: str | None = None  # oci-layout / oci-archive: absolute path on disk

    @classmethod
    def from_model(cls, name: str, model: RegistryConfig) -> RegistrySettings:
        if model.type != "registry":
            assert model.path is not None  # the model requires it
            path = os.path.abspath(os.path.expanduser(model.path))
            # A layout's "host" is its path (the transfer cache's key); verify: always,
            # as a HEAD is a stat there and a carried-away layout must not be trusted.
            return cls(
                name=name, host=f"{model.type}:{path}", scheme="file", auth_type="anonymous",
                verify="always", kind=model.type, path=path,
            )
        assert model.url is not None  # the model requires it for a registry
        scheme_match = re.match(r"^(https?)://", model.url)
        host = normalise_registry(re.sub(r"^https?://", "", model.url).lower())
        if scheme_match:
            scheme = scheme_match.group(1)
        else:
            scheme = "http" if model.insecure or is_loopback_host(host) else "https"
        return cls(
            name=name,
            host=host,
            scheme=scheme,
            auth_type=effective_auth_type(model),
            username=model.credentials.username if model.credentials else None,
            password=model.credentials.password if model.credentials else None,
            token=model.token,
            max_concurrent=model.max_concurrent,
            rate_limit=model.rate_limit,
            head_first=model.head_first,
            min_remaining=model.min_remaining,
            verify=model.verify or "cached",
            insecure=model.insecure,
            profile=model.profile,
            timeout=model.timeout,
        )

    @property
    def api_host(self) -> str:
        """Where the distribution API is served (Docker Hub: registry-1.docker.io)."""
        return api_host(self.host)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.api_host}"

    def repository(self, path: str) -> str:
        """Docker Hub's one-component names live under ``library/`` (normalize.go)."""
        return normalise_repository(self.host, path)


def effective_auth_type(model: RegistryConfig) -> str | None:
    if model.auth_type == "ghcr":
        return "docker_config"  # deprecated alias (ocync guide, GHCR page)
    if model.auth_type is not None:
        return model.auth_type
    if model.token is not None:
        return "static_token"
    if model.credentials is not None:
        return "basic"
    return None  # auto: ~/.docker/config.json ($DOCKER_CONFIG) entry for the host, else anonymous


# As regsync without fastCheck: a signature added after an image was mirrored must still arrive.
DEFAULT_ARTIFACTS_REFRESH = "cached"


@dataclass(frozen=True, slots=True)
class ArtifactPolicy:
    """Which referrers to copy: ``include``/``exclude`` are globs over artifact types;
    ``refresh`` says whether unchanged tags are checked for new referrers too."""

    enabled: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    require_artifacts: bool = False
    refresh: str = DEFAULT_ARTIFACTS_REFRESH  # "cached" | "always" | "on_change"

    @property
    def refresh_unchanged(self) -> bool:
        """List the referrers of a tag that is already in sync too (``cached``: when its
        target is verified rather than vouched for by the cache; ``always``: every run)."""
        return self.enabled and self.refresh != "on_change"

    @property
    def refresh_trusted(self) -> bool:
        """Also for a tag the transfer cache vouches for (``refresh: always``)."""
        return self.enabled and self.refresh == "always"

    def allows(self, artifact_type: str | None) -> bool:
        """Whether a referrer of this artifact type is copied (no type: matched as "")."""
        if not self.enabled:
            return False
        kind = artifact_type or ""
        if self.include and not any(fnmatchcase(kind, p) for p in self.include):
            return False
        return not any(fnmatchcase(kind, p) for p in self.exclude)


# prune.max_fraction's default: losing more than half of a repository's managed tags in one
# run looks like a broken source listing or filter rather than normal churn.
DEFAULT_PRUNE_MAX_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class PrunePolicy:
    """``prune:`` resolved: off unless enabled; ``keep`` globs are never deleted; more than
    ``max_fraction`` of a repository's managed tags in one run is refused."""

    enabled: bool = False
    keep: tuple[str, ...] = ()
    max_fraction: float = DEFAULT_PRUNE_MAX_FRACTION

    def keeps(self, tag: str) -> bool:
        return any(fnmatchcase(tag, p) for p in self.keep)


@dataclass(frozen=True, slots=True)
class ResolvedMapping:
    """One mapping as the engine needs it: who to read, where to write, what to select.

    ``platforms`` None means "copy indexes verbatim"; otherwise trim them (ocync.oci.platform).
    ``repo_from`` / ``target_repos`` are normalised for their registry (Docker Hub library/).
    """

    index: int
    source: RegistrySettings
    targets: tuple[RegistrySettings, ...]
    repo_from: str
    repo_to: str
    target_repos: tuple[str, ...]  # repo_to normalised per target, same order as targets
    tag_filter: TagFilter
    platforms: tuple[Platform, ...] | None
    artifacts: ArtifactPolicy
    prune: PrunePolicy = field(default_factory=PrunePolicy)
    # ``from: team/*``: repo_from / target_repos are patterns, expanded from the catalog.
    source_pattern: RepoPattern | None = None
    exclude: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()  # pinned images (``digests:`` and digests in tags.include)
    tag_template: str | None = None

    @property
    def label(self) -> str:
        return f"mappings[{self.index}] {self.source.host}/{self.repo_from} -> {self.repo_to}"

# ---------------------------------------------------------------------------------------
# From the models to the dataclasses (the methods of Config call these)


def registry_settings(cfg: Config, name: str) -> RegistrySettings:
    return RegistrySettings.from_model(name, cfg.registries[name])


def registry_for_host(cfg: Config, host: str) -> RegistrySettings | None:
    """The configured registry serving ``host`` (e.g. for ``ocync tags -c``), if any."""
    wanted = normalise_registry(host)
    for name, model in cfg.registries.items():
        settings = RegistrySettings.from_model(name, model)
        if settings.host == wanted:
            return settings
    return None


def expand_targets(cfg: Config, names: Iterable[str]) -> tuple[str, ...]:
    """Group names become their members; duplicates are dropped, order kept."""
    out: list[str] = []
    for name in names:
        members = cfg.target_groups.get(name, [name]) if name not in cfg.registries else [name]
        out.extend(members)
    return tuple(dict.fromkeys(out))


def _pick(own: TagsConfig | ArtifactsConfig | PruneConfig | None,
          base: TagsConfig | ArtifactsConfig | PruneConfig | None, name: str) -> Any:
    """The mapping's own field, else the defaults' (None when neither sets it)."""
    value = getattr(own, name, None)
    return getattr(base, name, None) if value is None else value


def effective_tags(cfg: Config, mapping: MappingConfig) -> TagFilter:
    """Mapping ``tags`` fields override ``defaults.tags`` field by field; the defaults'
    ``exclude`` is the soft tier, the mapping's own ``exclude`` the hard tier."""
    base, own = cfg.defaults.tags, mapping.tags
    glob = _pick(own, base, "glob")
    return TagFilter(
        # `glob: []` selects nothing by pattern: only the literal includes (no listing needed).
        glob=("*",) if glob is None else tuple(glob),
        semver=_pick(own, base, "semver"),
        exclude=tuple((own.exclude if own else None) or ()),
        soft_exclude=tuple((base.exclude if base else None) or ()),
        include=tuple(_pick(own, base, "include") or ()),
        sort=_pick(own, base, "sort"),
        latest=_pick(own, base, "latest"),
        min_tags=_pick(own, base, "min_tags"),
        immutable_tags=_pick(own, base, "immutable_tags"),
    )


def effective_artifacts(cfg: Config, mapping: MappingConfig) -> ArtifactPolicy:
    base, own = cfg.defaults.artifacts, mapping.artifacts
    enabled = _pick(own, base, "enabled")
    return ArtifactPolicy(
        enabled=True if enabled is None else bool(enabled),
        include=tuple(_pick(own, base, "include") or ()),
        exclude=tuple(_pick(own, base, "exclude") or ()),
        require_artifacts=bool(_pick(own, base, "require_artifacts")),
        refresh=_pick(own, base, "refresh") or DEFAULT_ARTIFACTS_REFRESH,
    )


def effective_prune(cfg: Config, mapping: MappingConfig) -> PrunePolicy:
    """Mapping ``prune`` fields override ``defaults.prune`` field by field."""
    base, own = cfg.defaults.prune, mapping.prune
    fraction = _pick(own, base, "max_fraction")
    return PrunePolicy(
        enabled=bool(_pick(own, base, "enabled")),
        keep=tuple(_pick(own, base, "keep") or ()),
        max_fraction=DEFAULT_PRUNE_MAX_FRACTION if fraction is None else float(fraction),
    )


def resolve_mapping(cfg: Config, index: int) -> ResolvedMapping:
    mapping = cfg.mappings[index]
    source_name = mapping.source or cfg.defaults.source
    target_names = mapping.targets if mapping.targets is not None else cfg.defaults.targets
    if source_name is None or not target_names:
        raise ConfigError(f"mappings[{index}]: no source or no targets")
    source = registry_settings(cfg, source_name)
    targets = tuple(registry_settings(cfg, n) for n in expand_targets(cfg, target_names))
    platforms = mapping.platforms if mapping.platforms is not None else cfg.defaults.platforms
    to = mapping.to or mapping.from_
    tag_filter = effective_tags(cfg, mapping)
    pinned = [d for d in tag_filter.include if is_digest(d)]
    if pinned:  # digests pin images: never tag names for the filter
        tag_filter = dataclasses.replace(
            tag_filter, include=tuple(t for t in tag_filter.include if not is_digest(t))
        )
    if mapping.digests and mapping.tags is None:
        # `digests:` alone copies just those images, no tags (defaults.tags do not apply).
        tag_filter = TagFilter(glob=())
    pattern = is_pattern(mapping.from_)
    return ResolvedMapping(
        index=index,
        source=source,
        targets=targets,
        repo_from=source.repository(mapping.from_),
        repo_to=to,
        target_repos=tuple(t.repository(to) for t in targets),
        tag_filter=tag_filter,
        platforms=None if platforms is None else tuple(
            dict.fromkeys(Platform.parse(p) for p in platforms)
        ),
        artifacts=effective_artifacts(cfg, mapping),
        prune=effective_prune(cfg, mapping),
        source_pattern=RepoPattern.parse(source.repository(mapping.from_)) if pattern else None,
        exclude=tuple(mapping.exclude or ()),
        digests=tuple(dict.fromkeys((*(mapping.digests or ()), *pinned))),
        tag_template=mapping.tag_template,
    )


__all__ = [
    "DEFAULT_ARTIFACTS_REFRESH",
    "DEFAULT_PRUNE_MAX_FRACTION",
    "ArtifactPolicy",
    "PrunePolicy",
    "RegistrySettings",
    "ResolvedMapping",
    "effective_artifacts",
    "effective_auth_type",
    "effective_prune",
    "effective_tags",
    "expand_targets",
    "registry_for_host",
    "registry_settings",
    "resolve_mapping",
]
