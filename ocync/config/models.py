"""The pydantic models of the config file: shapes, types and per-field rules.

This module holds the whole file's model and the registry and global sections; the mapping
side (``defaults``, ``mappings``) is :mod:`ocync.config.mappingmodels`, the shared field
types :mod:`ocync.config.fieldtypes`.

A field is checked here when it can be checked alone (a url, a repository path, a rate);
rules between fields and names live in :mod:`ocync.config.crosscheck`. The methods of
:class:`Config` resolve it (:mod:`ocync.config.resolve`), so nothing downstream sees pydantic.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from ocync.config import resolve as resolution
from ocync.config.fieldtypes import NAME, ConfigModel, Duration, PositiveCount, Size, StrList
from ocync.config.mappingmodels import (
    ArtifactsConfig,
    DefaultsConfig,
    MappingConfig,
    PruneConfig,
    TagsConfig,
)
from ocync.config.problems import suggest
from ocync.config.resolve import ArtifactPolicy, PrunePolicy, RegistrySettings, ResolvedMapping
from ocync.config.units import check_rate
from ocync.oci.headertext import (
    CONTROL_CHARACTER_PROBLEM,
    NON_ASCII_TOKEN_PROBLEM,
    has_control_character,
)
from ocync.oci.tagfilter import TagFilter
from ocync.profilenames import PROFILE_NAMES


def _credential_text(v: str) -> str:
    """A token or password as given, or via ``${VAR}``: never with a CR or newline in it."""
    if has_control_character(v):
        raise ValueError(CONTROL_CHARACTER_PROBLEM)
    return v


class Credentials(ConfigModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        return _credential_text(v)


AuthType = Literal["anonymous", "basic", "static_token", "docker_config", "ghcr"]


RegistryType = Literal["registry", "oci-layout", "oci-archive"]
# Keys that mean a network registry: refused on an OCI layout or archive entry.
_REGISTRY_ONLY_KEYS = (
    "url", "auth_type", "credentials", "token", "max_concurrent", "rate_limit", "insecure",
    "profile", "timeout", "head_first",
)


class RegistryConfig(ConfigModel):
    type: RegistryType = Field(
        default="registry",
        description="registry (default); oci-layout: an OCI image layout directory at path; "
        "oci-archive: a tar of one (skopeo's oci-archive) at path",
    )
    path: str | None = Field(
        default=None, min_length=1, description="oci-layout: the directory; oci-archive: the .tar file"
    )
    url: str | None = Field(default=None, description="host[:port], optionally with http:// or https://")
    auth_type: AuthType | None = Field(
        None, description="unset: token -> static_token, credentials -> basic, else docker_config"
    )
    credentials: Credentials | None = None
    token: str | None = Field(default=None, min_length=1)
    max_concurrent: PositiveCount | None = Field(default=None)
    rate_limit: str | None = Field(default=None, description="documented cap, e.g. 2000/60s")
    head_first: bool | None = Field(default=None, description="HEAD manifests before GET")
    min_remaining: int = Field(
        default=0, ge=0,
        description="as a source with a pull quota (Docker Hub): pulls (manifest GETs) a run "
        "leaves unspent for the cluster's own image pulls; images that do not fit are deferred",
    )
    verify: Literal["always", "cached"] | None = Field(
        default=None,
        description="as a target: HEAD every tag on every run (always), or trust the transfer "
        "cache's record of what ocync wrote for up to cache_ttl (cached, the default)",
    )
    insecure: bool = Field(default=False, description="plain HTTP / no TLS verification")
    profile: str | None = Field(
        default=None, description="registry behaviour profile (default: chosen by host)"
    )
    timeout: Duration | None = Field(
        default=None,
        description="a request that receives nothing for this long fails (default 60s)",
    )

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"timeout must be a positive, finite duration, not {v:g}")
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and not v.isascii():
            raise ValueError(NON_ASCII_TOKEN_PROBLEM)
        return v if v is None else _credential_text(v)

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str | None) -> str | None:
        if v is not None and v not in PROFILE_NAMES:
            raise ValueError(
                f"unknown profile {v!r}: expected one of {', '.join(sorted(PROFILE_NAMES))}"
                + suggest(v, PROFILE_NAMES)
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _url_required(cls, data: object) -> object:
        """A registry needs ``url``: reported as the missing key, as before layouts existed."""
        if isinstance(data, dict) and data.get("type", "registry") == "registry" and "url" not in data:
            raise ValidationError.from_exception_data(
                cls.__name__, [InitErrorDetails(type="missing", loc=("url",), input=data)]
            )
        return data

    @model_validator(mode="after")
    def _kind_keys(self) -> RegistryConfig:
        if self.type == "registry":
            if self.url is None:
                raise ValueError("url is required (or type: oci-layout / oci-archive with path)")
            if self.path is not None:
                raise ValueError("path is only for type: oci-layout or oci-archive")
            return self
        if self.path is None:
            raise ValueError(f"type: {self.type} needs path")
        given = [k for k in _REGISTRY_ONLY_KEYS if k in self.model_fields_set]
        if given:
            raise ValueError(f"type: {self.type} takes no {', '.join(given)} (no network, no credentials)")
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        text = v.strip().rstrip("/")
        host = re.sub(r"^https?://", "", text)
        if "@" in host.split("/", 1)[0]:
            # Never echo it: the part before @ is usually user:password.
            raise ValueError(
                "credentials in the url are not supported (and not shown): "
                "use credentials: {username, password} or token"
            )
        if not host or "://" in host:
            raise ValueError(f"invalid url {v!r}: expected host[:port], http:// or https://")
        if "/" in host:
            raise ValueError(
                f"invalid url {v!r}: no path allowed (put the repository path in mappings)"
            )
        m = re.fullmatch(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::([0-9]{1,5}))?", host)
        if m is None:
            raise ValueError(f"invalid url {v!r}: expected host[:port]")
        if m.group(1) is not None and not 0 < int(m.group(1)) < 65536:
            raise ValueError(f"invalid url {v!r}: port out of range")
        return text

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        return None if v is None else check_rate(v)


class GlobalConfig(ConfigModel):
    # 8 concurrent image transfers: enough to keep a 2-core runner busy while staying far
    # below per-principal caps (GHCR 2000/min); raise it for big fleets.
    max_concurrent_transfers: PositiveCount = Field(default=8)
    cache_dir: str | None = Field(default=None, description="default $XDG_CACHE_HOME/ocync")
    cache_ttl: Duration = Field(default=12 * 3600.0)
    staging_size_limit: Size = Field(default=2 * 1024**3)
    rate_share: float = Field(default=1.0, gt=0, le=1, description="share of each cap we may use")

    def resolved_cache_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "ocync"


def _names(value: object) -> object:
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and not NAME.fullmatch(key):
                raise ValueError(f"invalid name {key!r}: letters, digits, '_', '.', '-'")
    return value


class Config(ConfigModel):
    """The whole file. Use :func:`load_config`; then :meth:`resolve` for the engine."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, title="ocync configuration"
    )

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    registries: Annotated[dict[str, RegistryConfig], BeforeValidator(_names)] = Field(
        default_factory=dict
    )
    target_groups: Annotated[dict[str, StrList], BeforeValidator(_names)] = Field(
        default_factory=dict
    )
    defaults: DefaultsConfig = Field(default_factory=DefaultsConfig)
    mappings: list[MappingConfig] = Field(default_factory=list)

    def registry(self, name: str) -> RegistrySettings:
        return resolution.registry_settings(self, name)

    def registry_for_host(self, host: str) -> RegistrySettings | None:
        """The configured registry serving ``host`` (e.g. for ``ocync tags -c``), if any."""
        return resolution.registry_for_host(self, host)

    def expand_targets(self, names: Iterable[str]) -> tuple[str, ...]:
        """Group names become their members; duplicates are dropped, order kept."""
        return resolution.expand_targets(self, names)

    def effective_tags(self, mapping: MappingConfig) -> TagFilter:
        """``mapping.tags`` over ``defaults.tags``, field by field (see resolution.effective_tags)."""
        return resolution.effective_tags(self, mapping)

    def effective_artifacts(self, mapping: MappingConfig) -> ArtifactPolicy:
        return resolution.effective_artifacts(self, mapping)

    def effective_prune(self, mapping: MappingConfig) -> PrunePolicy:
        return resolution.effective_prune(self, mapping)

    def resolve_mapping(self, index: int) -> ResolvedMapping:
        return resolution.resolve_mapping(self, index)

    def resolve(self) -> tuple[ResolvedMapping, ...]:
        """Every mapping, flattened and frozen for the engine (see ResolvedMapping)."""
        return tuple(resolution.resolve_mapping(self, i) for i in range(len(self.mappings)))


__all__ = [
    "ArtifactsConfig",
    "AuthType",
    "Config",
    "Credentials",
    "DefaultsConfig",
    "GlobalConfig",
    "MappingConfig",
    "PruneConfig",
    "RegistryConfig",
    "RegistryType",
    "TagsConfig",
]
