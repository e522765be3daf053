"""The pydantic models of the config file: shapes, types and per-field rules.

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
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from ocync.config import resolve as resolution
from ocync.config.problems import suggest
from ocync.config.resolve import ArtifactPolicy, PrunePolicy, RegistrySettings, ResolvedMapping
from ocync.config.units import check_rate, format_duration, format_size, parse_duration, parse_size
from ocync.errors import ConfigError
from ocync.oci.digestpin import is_digest, template_problem
from ocync.oci.headertext import (
    CONTROL_CHARACTER_PROBLEM,
    NON_ASCII_TOKEN_PROBLEM,
    has_control_character,
)
from ocync.oci.platform import Platform
from ocync.oci.repopattern import RepoPattern, is_pattern
from ocync.oci.tagfilter import TagFilter
from ocync.oci.version import parse_range
from ocync.profilenames import PROFILE_NAMES

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# distribution/reference regexp.go: path components of a repository name.
_REPO_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def _one_or_many(value: object) -> object:
    """``x`` -> ``[x]``; a number stays one item so the error says "expected a string"."""
    if value is None or isinstance(value, list | dict):
        return value
    return [value]


def _no_bool(value: object) -> object:
    """YAML's ``true`` is not the count 1 (pydantic's lax int would take it)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got boolean {str(value).lower()}")
    return value


def _as_duration(value: object) -> object:
    return parse_duration(value)


def _as_size(value: object) -> object:
    return parse_size(value)


# Counts: whole numbers (``${VAR}`` strings still convert), never a boolean. The bound sits
# before the validator so that the JSON schema says "minimum".
Count = Annotated[int, Field(ge=0), BeforeValidator(_no_bool)]
PositiveCount = Annotated[int, Field(ge=1), BeforeValidator(_no_bool)]
StrList = Annotated[
    list[str],
    BeforeValidator(_one_or_many),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    ),
]
Duration = Annotated[
    float,
    BeforeValidator(_as_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": r"^([0-9.]+(ms|s|m|h|d))+$"}, {"type": "number"}],
            "description": "a duration: 30s, 15m, 12h, 1d, 1h30m or seconds",
        }
    ),
]
Size = Annotated[
    int,
    BeforeValidator(_as_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}],
            "description": "a size: 2GiB, 512MiB, 500MB or bytes",
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(values: list[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    for v in values:
        if not v.strip():
            raise ValueError(f"empty {what}")
    return values


class TagsConfig(_Model):
    """``tags:`` of ``defaults`` or a mapping. Unset fields inherit ``defaults.tags``."""

    glob: StrList | None = Field(default=None, description="glob(s) a tag must match (default *)")
    semver: str | None = Field(default=None, description='version range, e.g. ">=1.0, <2.0"')
    exclude: StrList | None = Field(default=None, description="globs to drop")
    include: StrList | None = Field(default=None, description="literal tags or globs to keep anyway")
    sort: Literal["semver", "alpha"] | None = None
    latest: PositiveCount | None = Field(default=None, description="keep the N highest (needs sort)")
    min_tags: Count | None = Field(default=None, description="fewer survivors is an error")
    immutable_tags: str | None = Field(default=None, description="glob of tags that never change")

    @field_validator("glob", "exclude", "include")
    @classmethod
    def _patterns(cls, v: list[str] | None) -> list[str] | None:
        return _check_patterns(v, "pattern")

    @field_validator("include")
    @classmethod
    def _digests(cls, v: list[str] | None) -> list[str] | None:
        # An include naming a digest pins that image (ocync.oci.digestpin).
        for item in v or ():
            if ":" in item and not is_digest(item):
                raise ValueError(f"{item!r}: not a tag, nor a digest (sha256:<64 hex digits>)")
        return v

    @field_validator("semver")
    @classmethod
    def _semver(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_range(v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v


class PruneConfig(_Model):
    """``prune:`` of ``defaults`` or a mapping: delete target tags ocync wrote that the tag
    filter no longer selects. Unset fields inherit ``defaults.prune``."""

    enabled: bool | None = Field(default=None, description="prune this mapping's targets (default false)")
    keep: StrList | None = Field(default=None, description="globs of target tags never deleted")
    max_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="refuse to delete more than this share of a repository's managed tags in "
        "one run (default 0.5; --force-prune lifts it)",
    )

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: list[str] | None) -> list[str] | None:
        return _check_patterns(v, "keep glob")



def _prune_flag(value: object) -> object:
    """``prune: true`` is ``prune: {enabled: true}`` (one model, so one error line)."""
    if isinstance(value, bool):
        return {"enabled": value}
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"expected true, false or {{enabled, keep, max_fraction}}, got {value!r}")
    return value


def _boolean_too(schema: dict[str, Any]) -> None:
    """The JSON schema of ``prune``: a boolean as well as the object."""
    schema.setdefault("anyOf", []).insert(0, {"type": "boolean"})


PruneSetting = Annotated[PruneConfig, BeforeValidator(_prune_flag)]


class ArtifactsConfig(_Model):
    """Referrers (signatures, SBOMs, attestations) copied along with each image."""

    enabled: bool | None = Field(default=None, description="copy referrers (default true)")
    include: StrList | None = Field(default=None, description="artifact types (globs) to copy")
    exclude: StrList | None = Field(default=None, description="artifact types (globs) to skip")
    require_artifacts: bool | None = Field(default=None, description="an image without any is an error")
    refresh: Literal["cached", "on_change", "always"] | None = Field(
        default=None,
        description="cached (default): look for new referrers of an unchanged tag whenever "
        "its target is verified (at least once per cache_ttl); always: on every run; "
        "on_change: only with a copied image",
    )


def _credential_text(v: str) -> str:
    """A token or password as given, or via ``${VAR}``: never with a CR or newline in it."""
    if has_control_character(v):
        raise ValueError(CONTROL_CHARACTER_PROBLEM)
    return v


class Credentials(_Model):
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


class RegistryConfig(_Model):
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


class GlobalConfig(_Model):
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


def _platform_list(value: object) -> object:
    value = _one_or_many(value)
    if isinstance(value, list):
        if not value:
            raise ValueError("empty list: omit `platforms` to copy every platform")
        for item in value:
            if isinstance(item, str):
                try:
                    Platform.parse(item)
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
    return value


PlatformList = Annotated[
    list[str],
    BeforeValidator(_platform_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[a-z0-9._-]+/[a-z0-9._-]+(/[a-z0-9._-]+)?$"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
]


class DefaultsConfig(_Model):
    source: str | None = None
    targets: StrList | None = Field(default=None, description="group name, registry name or list")
    platforms: PlatformList | None = None
    tags: TagsConfig | None = None
    artifacts: ArtifactsConfig | None = None
    prune: PruneSetting | None = Field(
        default=None,
        description="true/false, or {enabled, keep, max_fraction}",
        json_schema_extra=_boolean_too,
    )


def _check_repo(v: str) -> str:
    if ":" in v or "@" in v:
        raise ValueError(f"{v!r}: a repository has no tag or digest (select tags with `tags`)")
    if v != v.lower():
        raise ValueError(f"{v!r}: repository names are lowercase")
    if not v or not all(_REPO_COMPONENT.fullmatch(c) for c in v.split("/")):
        raise ValueError(
            f"{v!r}: not a repository path (lowercase letters, digits, separators . _ __ -, "
            "components joined by /)"
        )
    return v


def _check_repo_or_pattern(v: str) -> str:
    if not is_pattern(v):
        return _check_repo(v)
    if v != v.lower():
        raise ValueError(f"{v!r}: repository names are lowercase")
    RepoPattern.parse(v)
    return v


class MappingConfig(_Model):
    from_: str = Field(
        alias="from",
        description="source repository path, or a pattern: team/* (one more component), "
        "team/** (any depth), listed with the source's catalog",
    )
    to: str | None = Field(
        default=None,
        description="target repository path (default: from); for a pattern, ending in /* "
        "where the matched suffix goes",
    )
    source: str | None = None
    targets: StrList | None = None
    tags: TagsConfig | None = None
    platforms: PlatformList | None = None
    artifacts: ArtifactsConfig | None = None
    prune: PruneSetting | None = Field(
        default=None,
        description="true/false, or {enabled, keep, max_fraction}",
        json_schema_extra=_boolean_too,
    )
    exclude: StrList | None = Field(
        default=None, description="globs of source repositories a pattern `from` skips"
    )
    digests: StrList | None = Field(
        default=None, description="images copied by digest (sha256:<hex>), pushed by digest"
    )
    tag_template: str | None = Field(
        default=None,
        description='also tag each pinned digest, e.g. "pin-{hex12}" (fields {alg} {hex} {hex12})',
    )

    @field_validator("from_", "to")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        return None if v is None else _check_repo_or_pattern(v)

    @field_validator("exclude")
    @classmethod
    def _excludes(cls, v: list[str] | None) -> list[str] | None:
        return _check_patterns(v, "pattern")

    @field_validator("digests")
    @classmethod
    def _digest_list(cls, v: list[str] | None) -> list[str] | None:
        for item in v or ():
            if not is_digest(item):
                raise ValueError(f"{item!r}: not a digest (sha256:<64 hex digits>)")
        return v

    @field_validator("tag_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        problem = None if v is None else template_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _to_defaults_to_from(self) -> MappingConfig:
        if self.to is None:
            object.__setattr__(self, "to", self.from_)
        return self


def _names(value: object) -> object:
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and not _NAME.fullmatch(key):
                raise ValueError(f"invalid name {key!r}: letters, digits, '_', '.', '-'")
    return value


class Config(_Model):
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
