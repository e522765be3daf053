"""Per-registry behaviour as frozen data (quirks are data: regclient ``config/host.go``).

Code reads these fields and never tests host names; the host -> profile table below is the
only place a host name appears. GHCR behaviours are the ones observed on ghcr.io (each PATCH
replaces the upload, so one PATCH per blob; mounts only inside the owner's namespace; 307 to
a storage host for blob GETs; 429 "allowed: 2000/minute" counting every request; no referrers
API). The generic profile follows CNCF distribution 2.8 and the OCI distribution-spec 1.1.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ocync.errors import ConfigError
from ocync.profilenames import HOST_PROFILES, NO_CATALOG_PROFILES, PROFILE_NAMES, profile_name_for

UploadStrategy = Literal["stream_put", "single_patch", "monolithic"]


class MountScope(enum.Enum):
    """Where a registry fulfils cross-repository mounts (OCI distribution-spec "Mounting a
    blob from another repository"). Strict: ``MountScope("typo")`` raises ValueError."""

    ANY = "any"  # distribution 2.8: any repository the token may pull from
    NAMESPACE = "namespace"  # GHCR: same first path component (org or user) only
    NONE = "none"  # mounts never fulfilled: do not try


# The request kinds of the shared contract (client counters, mock stats, window grouping).
REQUEST_KINDS: tuple[str, ...] = (
    "ping",
    "token",
    "blob_head",
    "blob_get",
    "upload_post",
    "upload_patch",
    "upload_put",
    "upload_get",
    "upload_delete",
    "mount",
    "manifest_head",
    "manifest_get",
    "manifest_put",
    "manifest_delete",
    "tags_list",
    "referrers",
    "catalog",
    "storage_get",
    "other",
)


def _windows(*, unmetered: tuple[str, ...] = (), **windows: tuple[str, ...]) -> Mapping[str, str | None]:
    """Window key -> the request kinds it meters, as the kind -> key map the limiter reads.

    Kinds in ``unmetered`` map to None, as does ``storage_get`` always (a redirect target such
    as GHCR's blob storage host is not the registry's API). Kinds named nowhere use "default"."""
    groups: dict[str, str | None] = {kind: key for key, kinds in windows.items() for kind in kinds}
    groups.update(dict.fromkeys((*unmetered, "storage_get"), None))
    unknown = set(groups) - set(REQUEST_KINDS)
    assert not unknown, unknown
    assert len(groups) == sum(map(len, windows.values())) + len({*unmetered, "storage_get"}), windows
    return MappingProxyType(groups)


@dataclass(frozen=True, slots=True)
class RegistryProfile:
    """Everything that differs between registries, as far as the client is concerned."""

    name: str
    # How a blob is uploaded: POST + one streamed PUT ?digest= (2 requests), POST + one
    # streamed PATCH + PUT (3 requests; GHCR), or POST + a buffered PUT (small blobs).
    upload_strategy: UploadStrategy = "stream_put"
    # The token endpoint answers a request with several `scope=` parameters with one token
    # valid for all of them (distribution token.md: "specified multiple times if there is more
    # than one scope"; docker's cross-repository mount asks one token for two repositories,
    # and GHCR's in-namespace mounts work with it), so one token serves many repositories.
    # A session that sees such a token refused falls back to one repository per token.
    multi_scope_tokens: bool = True
    # Where cross-repository mounts work: any repository, only inside the target's
    # namespace (first path component; GHCR), or not at all.
    mount_scope: MountScope = MountScope.ANY
    # A mount whose `from` is the target repository itself answers 201 iff the blob is
    # linked there (distribution 2.8 does; an honest existence probe costing one request).
    mount_probe_ok: bool = True
    # Request kind -> rate-limit window key; None = unmetered. Kinds not listed use "default".
    window_groups: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    # Documented or observed request cap ("COUNT/PERIOD"), None when there is none.
    documented_cap: str | None = None
    # `n` sent on tags/list (None: let the registry choose).
    tags_page_size: int | None = None
    # OCI 1.1 referrers API: True supported, False known unsupported (tag fallback), None probe.
    referrers_api: bool | None = None
    # Blobs up to this size may go monolithic (buffered) when the strategy is "monolithic";
    # bigger ones stream. Bounded memory beats one request saved.
    monolithic_max_bytes: int = 4 * 1024 * 1024
    # Whether the distribution API can delete manifests at all (pruning). GHCR cannot: its
    # package versions are deleted through GitHub's REST API, so pruning there is refused.
    manifest_delete: bool = True
    # ``DELETE /v2/<name>/manifests/<tag>`` (OCI distribution 1.1): True supported, False
    # not (delete by digest), None try it (distribution 2.8 answers 400 DIGEST_INVALID, or
    # 405 UNSUPPORTED with deletes disabled: then by digest).
    tag_delete: bool | None = None
    # Request kinds that spend a pull quota announced in ``ratelimit-remaining`` (Docker Hub:
    # manifest GETs only); its headers then plan pulls instead of pausing every request.
    pull_kinds: frozenset[str] = frozenset()
    # distribution-spec "Listing Repositories" (GET /v2/_catalog); GHCR has none.
    catalog: bool = True
    # `n` sent on _catalog (None: the registry's page, distribution's is 100; every page is
    # followed either way).
    catalog_page_size: int | None = None


# Fields left out take the defaults above, which are CNCF distribution 2.8's behaviour.
GHCR = RegistryProfile(
    name="ghcr",
    upload_strategy="single_patch",
    mount_scope=MountScope.NAMESPACE,
    mount_probe_ok=False,
    window_groups=_windows(all=tuple(k for k in REQUEST_KINDS if k != "storage_get")),
    documented_cap="2000/60s",  # GHCR's 429 message: "allowed: 2000/minute"
    tags_page_size=100,  # GHCR's default page when no `n` is sent
    referrers_api=False,
    manifest_delete=False,
    tag_delete=False,
    catalog=False,  # GHCR's registry API has no /v2/_catalog
)

# Docker Hub meters manifest GETs (its pull limit) and not HEADs (docs.docker.com
# "Docker Hub rate limit": a HEAD does not count towards the limit). No documented cap: the
# budget comes from its ratelimit-remaining headers.
DOCKERHUB = RegistryProfile(
    name="dockerhub",
    window_groups=_windows(manifest_get=("manifest_get",), unmetered=("manifest_head", "blob_head")),
    # docs.docker.com "Docker Hub pull usage and limits": a pull is a manifest GET; version
    # checks (HEAD) and blob downloads are not pulls.
    pull_kinds=frozenset({"manifest_get"}),
)

GENERIC = RegistryProfile(
    name="generic",
    window_groups=_windows(
        read=("ping", "token", "blob_get", "manifest_get", "referrers", "catalog"),
        head=("blob_head", "manifest_head"),
        upload=("upload_post", "upload_patch", "upload_put", "upload_get", "upload_delete", "mount"),
        manifest_write=("manifest_put", "manifest_delete"),
        tags=("tags_list",),
    ),
)

PROFILES: Mapping[str, RegistryProfile] = MappingProxyType(
    {p.name: p for p in (GENERIC, GHCR, DOCKERHUB)}
)
# The config validates `profile:` against PROFILE_NAMES (it does not import this I/O package).
assert tuple(PROFILES) == PROFILE_NAMES, (tuple(PROFILES), PROFILE_NAMES)
# ... and checks pattern mappings against NO_CATALOG_PROFILES (the host table lives there too).
assert {p.name for p in PROFILES.values() if not p.catalog} == NO_CATALOG_PROFILES


def profile_named(name: str) -> RegistryProfile:
    profile = PROFILES.get(name)
    if profile is None:
        raise ConfigError(f"unknown registry profile {name!r} (expected one of {', '.join(sorted(PROFILES))})")
    return profile


def select_profile(host: str, name: str | None = None) -> RegistryProfile:
    """The profile named in config (``profile:``), else the host table's, else generic."""
    if name:
        return profile_named(name)
    return PROFILES[profile_name_for(host)]


__all__ = [
    "DOCKERHUB",
    "GENERIC",
    "GHCR",
    "HOST_PROFILES",
    "PROFILES",
    "REQUEST_KINDS",
    "MountScope",
    "RegistryProfile",
    "UploadStrategy",
    "profile_named",
    "select_profile",
]
