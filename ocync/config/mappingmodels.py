"""The mapping side of the config file: ``defaults`` and ``mappings`` entries, with their
``tags``, ``artifacts``, ``prune`` and ``platforms`` settings."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from ocync.config.fieldtypes import (
    ConfigModel,
    Count,
    PositiveCount,
    StrList,
    check_patterns,
    one_or_many,
)
from ocync.errors import ConfigError
from ocync.oci.digestpin import is_digest, template_problem
from ocync.oci.platform import Platform
from ocync.oci.repopattern import RepoPattern, is_pattern
from ocync.oci.version import parse_range

# distribution/reference regexp.go: path components of a repository name.
_REPO_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


class TagsConfig(ConfigModel):
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
        return check_patterns(v, "pattern")

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


class PruneConfig(ConfigModel):
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
        return check_patterns(v, "keep glob")



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


class ArtifactsConfig(ConfigModel):
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


def _platform_list(value: object) -> object:
    value = one_or_many(value)
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


class DefaultsConfig(ConfigModel):
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


class MappingConfig(ConfigModel):
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
        return check_patterns(v, "pattern")

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


__all__ = [
    "ArtifactsConfig",
    "DefaultsConfig",
    "MappingConfig",
    "PruneConfig",
    "TagsConfig",
]
