"""The sync config: YAML with line numbers, ``${VAR}`` expansion, pydantic models, resolution.

The only module importing pydantic or yaml. A file is composed into YAML nodes (so every
value keeps its line), built into plain data, expanded (``${VAR}``, ``${VAR:-default}``,
``${VAR:?message}``, ``$$`` for a literal ``$``), validated by the models, then
cross-checked (names of registries and groups, ``latest`` without ``sort``...). Every problem
becomes one line ``FILE:LINE: mappings[3].tags.latest: what is wrong``; all of them are
raised together as one :class:`ConfigError` (exit 3). :meth:`Config.resolve` turns each
mapping into a flat, frozen :class:`ResolvedMapping` for the engine, so nothing downstream
sees pydantic.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
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

from ocync.errors import ConfigError
from ocync.oci.platform import Platform
from ocync.oci.reference import DOCKER_HUB, DOCKER_HUB_API, is_loopback_host, normalise_registry
from ocync.oci.tagfilter import TagFilter, selections_may_overlap
from ocync.oci.version import parse_range
from ocync.ratelimit.bucket import parse_rate
from ocync.registry.auth import (
    CONTROL_CHARACTER_PROBLEM,
    NON_ASCII_TOKEN_PROBLEM,
    docker_config_path,
    has_control_character,
)
from ocync.registry.profiles import PROFILES

log = logging.getLogger("ocync.config")

Loc = tuple[str | int, ...]
SECRET_KEYS = frozenset({"password", "token"})
REDACTED = "<redacted>"

# ---------------------------------------------------------------------------------------
# Durations, sizes, rates


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_duration(value: object) -> float:
    """``"12h"``, ``"30m"``, ``"1h30m"``, ``"500ms"``, ``"1d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 15m, 12h or 1d, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            return float(text)
        if text and re.fullmatch(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+", text):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError(f"expected a duration like 30s, 15m, 12h or 1d, got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 43200 -> ``12h``; round-trips through parse_duration."""
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    millis = seconds * 1000
    if millis.is_integer():
        return f"{int(millis)}ms"
    return repr(float(seconds))


_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
    "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip


def parse_size(value: object) -> int:
    """``"2GiB"``, ``"500MB"`` (decimal), ``"512Mi"``, ``"1g"`` (binary) or a byte count."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 2GiB or 500MB, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size must not be negative")
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size like 2GiB, 512MiB or 500MB, got {value!r}")


def format_size(size: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def check_rate(text: str) -> str:
    """A rate limit in the one grammar the client and the profiles use (``parse_rate``)."""
    try:
        parse_rate(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return text.strip()


# ---------------------------------------------------------------------------------------
# Models

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

    @field_validator("semver")
    @classmethod
    def _semver(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_range(v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v


class ArtifactsConfig(_Model):
    """Referrers (signatures, SBOMs, attestations) copied along with each image."""

    enabled: bool | None = Field(default=None, description="copy referrers (default true)")
    include: StrList | None = Field(default=None, description="artifact types (globs) to copy")
    exclude: StrList | None = Field(default=None, description="artifact types (globs) to skip")
    require_artifacts: bool | None = Field(default=None, description="an image without any is an error")
    refresh: Literal["on_change", "always"] | None = Field(
        default=None,
        description="always (default): look for new referrers of unchanged tags too; "
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


class RegistryConfig(_Model):
    url: str = Field(description="host[:port], optionally with http:// or https://")
    auth_type: AuthType | None = Field(
        None, description="unset: token -> static_token, credentials -> basic, else docker_config"
    )
    credentials: Credentials | None = None
    token: str | None = Field(default=None, min_length=1)
    max_concurrent: PositiveCount | None = Field(default=None)
    rate_limit: str | None = Field(default=None, description="documented cap, e.g. 2000/60s")
    head_first: bool | None = Field(default=None, description="HEAD manifests before GET")
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
        if v is not None and v not in PROFILES:
            raise ValueError(
                f"unknown profile {v!r}: expected one of {', '.join(sorted(PROFILES))}"
                + suggest(v, PROFILES)
            )
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
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


class MappingConfig(_Model):
    from_: str = Field(alias="from", description="source repository path")
    to: str | None = Field(default=None, description="target repository path (default: from)")
    source: str | None = None
    targets: StrList | None = None
    tags: TagsConfig | None = None
    platforms: PlatformList | None = None
    artifacts: ArtifactsConfig | None = None

    @field_validator("from_", "to")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        return None if v is None else _check_repo(v)

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

    # -- resolution -------------------------------------------------------------------

    def registry(self, name: str) -> RegistrySettings:
        return RegistrySettings.from_model(name, self.registries[name])

    def registry_for_host(self, host: str) -> RegistrySettings | None:
        """The configured registry serving ``host`` (e.g. for ``ocync tags -c``), if any."""
        wanted = normalise_registry(host)
        for name, model in self.registries.items():
            settings = RegistrySettings.from_model(name, model)
            if settings.host == wanted:
                return settings
        return None

    def expand_targets(self, names: Iterable[str]) -> tuple[str, ...]:
        """Group names become their members; duplicates are dropped, order kept."""
        out: list[str] = []
        for name in names:
            members = self.target_groups.get(name, [name]) if name not in self.registries else [name]
            out.extend(members)
        return tuple(dict.fromkeys(out))

    def effective_tags(self, mapping: MappingConfig) -> TagFilter:
        """Mapping ``tags`` fields override ``defaults.tags`` field by field; the defaults'
        ``exclude`` is the soft tier, the mapping's own ``exclude`` the hard tier."""
        base = self.defaults.tags or TagsConfig()
        own = mapping.tags or TagsConfig()

        def pick(name: str) -> Any:
            value = getattr(own, name)
            return getattr(base, name) if value is None else value

        glob = pick("glob")
        return TagFilter(
            # `glob: []` selects nothing by pattern: only the literal includes (no listing needed).
            glob=("*",) if glob is None else tuple(glob),
            semver=pick("semver"),
            exclude=tuple(own.exclude or ()),
            soft_exclude=tuple(base.exclude or ()),
            include=tuple(pick("include") or ()),
            sort=pick("sort"),
            latest=pick("latest"),
            min_tags=pick("min_tags"),
            immutable_tags=pick("immutable_tags"),
        )

    def effective_artifacts(self, mapping: MappingConfig) -> ArtifactPolicy:
        base = self.defaults.artifacts or ArtifactsConfig()
        own = mapping.artifacts or ArtifactsConfig()

        def pick(name: str) -> Any:
            value = getattr(own, name)
            return getattr(base, name) if value is None else value

        enabled = pick("enabled")
        return ArtifactPolicy(
            enabled=True if enabled is None else bool(enabled),
            include=tuple(pick("include") or ()),
            exclude=tuple(pick("exclude") or ()),
            require_artifacts=bool(pick("require_artifacts")),
            refresh=pick("refresh") or DEFAULT_ARTIFACTS_REFRESH,
        )

    def resolve_mapping(self, index: int) -> ResolvedMapping:
        mapping = self.mappings[index]
        source_name = mapping.source or self.defaults.source
        target_names = mapping.targets if mapping.targets is not None else self.defaults.targets
        if source_name is None or not target_names:
            raise ConfigError(f"mappings[{index}]: no source or no targets")
        source = self.registry(source_name)
        targets = tuple(self.registry(n) for n in self.expand_targets(target_names))
        platforms = mapping.platforms if mapping.platforms is not None else self.defaults.platforms
        to = mapping.to or mapping.from_
        return ResolvedMapping(
            index=index,
            source=source,
            targets=targets,
            repo_from=source.repository(mapping.from_),
            repo_to=to,
            target_repos=tuple(t.repository(to) for t in targets),
            tag_filter=self.effective_tags(mapping),
            platforms=None if platforms is None else tuple(
                dict.fromkeys(Platform.parse(p) for p in platforms)
            ),
            artifacts=self.effective_artifacts(mapping),
        )

    def resolve(self) -> tuple[ResolvedMapping, ...]:
        """Every mapping, flattened and frozen for the engine (see ResolvedMapping)."""
        return tuple(self.resolve_mapping(i) for i in range(len(self.mappings)))


# ---------------------------------------------------------------------------------------
# What the engine consumes: plain frozen dataclasses, no pydantic.


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
    insecure: bool = False
    profile: str | None = None  # ocync.registry.profiles name; None: chosen by host
    timeout: float | None = None  # seconds without a byte before a request fails; None: 60

    @classmethod
    def from_model(cls, name: str, model: RegistryConfig) -> RegistrySettings:
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
            insecure=model.insecure,
            profile=model.profile,
            timeout=model.timeout,
        )

    @property
    def api_host(self) -> str:
        """Where the distribution API is served (Docker Hub: registry-1.docker.io)."""
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.api_host}"

    def repository(self, path: str) -> str:
        """Docker Hub's one-component names live under ``library/`` (normalize.go)."""
        if self.host == DOCKER_HUB and "/" not in path:
            return f"library/{path}"
        return path


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
DEFAULT_ARTIFACTS_REFRESH = "always"


@dataclass(frozen=True, slots=True)
class ArtifactPolicy:
    """Which referrers to copy: ``include``/``exclude`` are globs over artifact types;
    ``refresh`` says whether unchanged tags are checked for new referrers too."""

    enabled: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    require_artifacts: bool = False
    refresh: str = DEFAULT_ARTIFACTS_REFRESH  # "always" | "on_change"

    def allows(self, artifact_type: str) -> bool:
        if not self.enabled:
            return False
        if self.include and not any(fnmatchcase(artifact_type, p) for p in self.include):
            return False
        return not any(fnmatchcase(artifact_type, p) for p in self.exclude)


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

    @property
    def label(self) -> str:
        return f"mappings[{self.index}] {self.source.host}/{self.repo_from} -> {self.repo_to}"


# ---------------------------------------------------------------------------------------
# YAML with line numbers


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(slots=True)
class _Document:
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    raw_secrets: dict[Loc, str] = field(default_factory=dict)
    filename: str = "<config>"
    nodes: int = 0

    def line_of(self, loc: Loc) -> int:
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 1


_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_MAX_DEPTH = 64
# Values built at most: aliases make a few lines expand exponentially ("billion laughs");
# a real config has hundreds of values, a big fleet tens of thousands.
_MAX_NODES = 200_000


def _build(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, doc: _Document, depth: int) -> Any:
    doc.nodes += 1
    if doc.nodes > _MAX_NODES:
        raise ConfigError(
            f"{doc.filename}:{node.start_mark.line + 1}: more than {_MAX_NODES} values once "
            "aliases are expanded (an alias bomb?)"
        )
    if depth > _MAX_DEPTH:
        doc.problems.append(Problem(loc, "nested too deeply (recursive alias?)"))
        return None
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        # Scalars with unknown tags fail in construct_object; collections must too.
        raise yaml.constructor.ConstructorError(
            None, None, f"unsupported tag {node.tag!r}", node.start_mark
        )
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                doc.lines.setdefault(loc + (key,), line)
                doc.problems.append(
                    Problem(loc + (key,), f"duplicate key `{key}` (first at line {seen[key]})")
                )
            else:
                seen[key] = line
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                doc.problems.append(Problem(loc, "keys must be plain names"))
                continue
            key = loader.construct_object(key_node)
            doc.lines[loc + (key,)] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, loc + (key,), doc, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines[loc + (i,)] = item.start_mark.line + 1
            items.append(_build(loader, item, loc + (i,), doc, depth + 1))
        return items
    return loader.construct_object(node)


def _compose(text: str, filename: str) -> _Document:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: max(exc.position, 0)].count("\n") + 1
        raise ConfigError(
            f"{filename}:{line}: invalid YAML: character #x{exc.character:04x} is not allowed"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{filename}:1: the file is empty (expected registries and mappings)")
        doc = _Document(data=None, filename=filename)
        doc.lines[()] = node.start_mark.line + 1
        doc.data = _build(loader, node, (), doc, 0)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{filename}:{line}: invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: max(exc.position, 0)].count("\n") + 1
        raise ConfigError(
            f"{filename}:{line}: invalid YAML: character #x{exc.character:04x} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{filename}:1: invalid YAML: {first}") from None
    except RecursionError:
        # PyYAML composes nested flow collections recursively ("[[[[...").
        raise ConfigError(f"{filename}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------------------
# ${VAR} expansion

_SUBST = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_VAR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>.*))?", re.DOTALL)


def substitute(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$$``.

    Unset (or empty, for ``:-`` and ``:?``) variables without a default are errors: a
    silently empty token is worse than a loud config error. ConfigError carries the reason.
    """

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        body = m.group("body")
        if body is None:
            raise ConfigError("unterminated `${` (write `$$` for a literal $)")
        var = _VAR.fullmatch(body)
        if var is None:
            raise ConfigError(
                f"bad substitution `${{{body}}}`: use ${{VAR}}, ${{VAR:-default}} or "
                "${VAR:?message}"
            )
        name, op, arg = var.group("name"), var.group("op"), var.group("arg")
        value = environ.get(name)
        if op == ":-":
            return value if value else substitute(arg, environ)
        if op == ":?":
            if not value:
                raise ConfigError(f"${{{name}}} is not set: {arg or 'required'}")
            return value
        if value is None:
            raise ConfigError(
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            )
        return value

    return _SUBST.sub(repl, text)


def _expand(data: Any, loc: Loc, environ: Mapping[str, str], doc: _Document) -> Any:
    if isinstance(data, dict):
        return {k: _expand(v, loc + (k,), environ, doc) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand(v, loc + (i,), environ, doc) for i, v in enumerate(data)]
    if isinstance(data, str):
        if loc and loc[-1] in SECRET_KEYS:
            doc.raw_secrets[loc] = data
        if "$" not in data:
            return data
        try:
            return substitute(data, environ)
        except ConfigError as exc:
            doc.problems.append(Problem(loc, str(exc)))
            return data
    return data


# ---------------------------------------------------------------------------------------
# Validation errors -> one line each


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _model_at(loc: Loc) -> type[BaseModel] | None:
    tp: Any = Config
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not isinstance(part, str):
                return None
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[part].annotation
        elif typing.get_origin(tp) is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [(f.alias or n) for n, f in model.model_fields.items()]


_ALL_MODELS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("global", GlobalConfig),
    ("a registry", RegistryConfig),
    ("credentials", Credentials),
    ("a mapping", MappingConfig),
    ("defaults", DefaultsConfig),
    ("tags", TagsConfig),
    ("artifacts", ArtifactsConfig),
)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` or an empty string."""
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close and len(word) >= 4:
        # "required" -> "require_artifacts": a long shared prefix is a good hint too.
        close = [o for o in options if len(os.path.commonprefix([o, word])) >= 0.7 * len(word)]
    return f" (did you mean `{close[0]}`?)" if close else ""


def _unknown_key_message(loc: Loc) -> str:
    key = str(loc[-1])
    if len(key) > 60:
        key = key[:57] + "..."
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key `{key}`"
    valid = _keys_of(model)
    hint = suggest(key, valid)
    if not hint:
        homes = [name for name, m in _ALL_MODELS if m is not model and key in _keys_of(m)]
        elsewhere = {k: name for name, m in reversed(_ALL_MODELS) if m is not model
                     for k in _keys_of(m)}
        close = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.75)
        if homes:
            hint = f" (`{key}` belongs in {homes[0]})"
        elif close:
            hint = f" (did you mean `{close[0]}`? it belongs in {elsewhere[close[0]]})"
        else:
            hint = f" (valid keys: {', '.join(valid)})"
    return f"unknown key `{key}`{hint}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return type(value).__name__


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    loc: Loc = tuple(err["loc"])
    secret = any(part in SECRET_KEYS or part == "credentials" for part in loc)
    got = "a value" if secret else _describe(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key_message(loc)
    if kind == "missing":
        return f"`{loc[-1]}` is required" if loc else "required"
    if kind in ("string_type",):
        quoted = ""
        if isinstance(err.get("input"), int | float) and not isinstance(err.get("input"), bool):
            quoted = " (quote it)"
        return f"expected a string, got {got}{quoted}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("list_type",):
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value), got {got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        hint = ""
        if isinstance(err.get("input"), str):
            hint = suggest(err["input"], [e.strip() for e in expected.split(",")])
        return f"must be one of {expected}, got {got}{hint}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"{err['msg'].lower()}, got {got}"
    if kind in ("string_too_short",):
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "assertion_error":
        return str(err["msg"]).removeprefix("Assertion failed, ")
    return f"{err['msg']}" + ("" if secret else f" (got {got})")


# ---------------------------------------------------------------------------------------
# Cross-references (after the models accepted the shapes)


def _cross_check(cfg: Config) -> list[Problem]:
    problems: list[Problem] = []
    registries = set(cfg.registries)
    groups = set(cfg.target_groups)
    names = sorted(registries | groups)

    for name in sorted(registries & groups):
        problems.append(
            Problem(("target_groups", name), f"`{name}` is both a registry and a group name")
        )
    for gname, members in cfg.target_groups.items():
        if not members:
            problems.append(Problem(("target_groups", gname), "empty group"))
        for i, member in enumerate(members):
            if member not in registries:
                problems.append(
                    Problem(
                        ("target_groups", gname, i),
                        f"unknown registry `{member}`{suggest(member, registries)}",
                    )
                )

    for rname, reg in cfg.registries.items():
        auth = effective_auth_type(reg)
        loc: Loc = ("registries", rname)
        if reg.token is not None and reg.credentials is not None:
            problems.append(Problem(loc + ("token",), "set either `token` or `credentials`"))
        if auth == "basic" and reg.credentials is None:
            problems.append(Problem(loc + ("auth_type",), "auth_type basic needs `credentials`"))
        if auth == "static_token" and reg.token is None:
            problems.append(Problem(loc + ("auth_type",), "auth_type static_token needs `token`"))
        if auth in ("anonymous", "docker_config") and reg.auth_type is not None:
            if reg.token is not None:
                problems.append(
                    Problem(loc + ("token",), f"`token` is ignored with auth_type {reg.auth_type}")
                )
            if reg.credentials is not None:
                problems.append(
                    Problem(
                        loc + ("credentials",),
                        f"`credentials` are ignored with auth_type {reg.auth_type}",
                    )
                )

    def check_source(loc: Loc, name: str) -> None:
        if name in groups and name not in registries:
            problems.append(Problem(loc, f"`{name}` is a target group; a source is one registry"))
        elif name not in registries:
            problems.append(
                Problem(loc, f"unknown registry `{name}`{suggest(name, registries)}")
            )

    def check_targets(loc: Loc, targets: list[str]) -> None:
        if not targets:
            problems.append(Problem(loc, "empty list of targets"))
        for i, name in enumerate(targets):
            if name not in registries and name not in groups:
                where = loc + (i,) if len(targets) > 1 else loc
                problems.append(
                    Problem(where, f"unknown registry or group `{name}`{suggest(name, names)}")
                )

    def check_tags(loc: Loc, tags: TagsConfig | None, merged: TagFilter | None) -> None:
        sort = merged.sort if merged else (tags.sort if tags else None)
        latest = merged.latest if merged else (tags.latest if tags else None)
        min_tags = merged.min_tags if merged else (tags.min_tags if tags else None)
        if latest is not None and sort is None:
            problems.append(Problem(loc + ("latest",), "`latest` needs `sort` (semver or alpha)"))
        if latest is not None and min_tags is not None and min_tags > latest:
            extra = len(merged.literal_includes) if merged else 0
            if min_tags > latest + extra:
                problems.append(
                    Problem(
                        loc + ("min_tags",),
                        f"min_tags {min_tags} can never be met with latest {latest}",
                    )
                )

    def check_artifacts(loc: Loc, policy: ArtifactPolicy) -> None:
        if policy.require_artifacts and not policy.enabled:
            problems.append(
                Problem(loc + ("require_artifacts",), "require_artifacts with artifacts disabled")
            )

    d = cfg.defaults
    if d.source is not None:
        check_source(("defaults", "source"), d.source)
    if d.targets is not None:
        check_targets(("defaults", "targets"), d.targets)
    if d.tags is not None and not cfg.mappings:
        check_tags(("defaults", "tags"), d.tags, None)

    for i, m in enumerate(cfg.mappings):
        loc = ("mappings", i)
        source = m.source or d.source
        if m.source is not None:
            check_source(loc + ("source",), m.source)
        elif source is None:
            problems.append(Problem(loc, "no source: set `source` here or `defaults.source`"))
        if m.targets is not None:
            check_targets(loc + ("targets",), m.targets)
        elif d.targets is None:
            problems.append(Problem(loc, "no targets: set `targets` here or `defaults.targets`"))
        merged = cfg.effective_tags(m)
        tag_loc = loc + ("tags",) if m.tags is not None and (
            m.tags.latest is not None or m.tags.sort is not None or m.tags.min_tags is not None
        ) else ("defaults", "tags")
        check_tags(tag_loc, m.tags, merged)
        art_loc = loc + ("artifacts",) if m.artifacts is not None else ("defaults", "artifacts")
        check_artifacts(art_loc, cfg.effective_artifacts(m))
        # Copying a repository onto itself would be a no-op at best.
        target_names = m.targets if m.targets is not None else d.targets
        if source in registries and target_names:
            for t in cfg.expand_targets(target_names):
                if t in registries and cfg.registry(t).host == cfg.registry(source).host and (
                    (m.to or m.from_) == m.from_
                ):
                    problems.append(
                        Problem(loc + ("to",), f"copies `{m.from_}` onto itself at registry `{t}`")
                    )

    problems.extend(_shared_targets(cfg))
    # Problems are reported in file order, each once.
    return list(dict.fromkeys(problems))


def _shared_targets(cfg: Config) -> list[Problem]:
    """Two mappings writing one target repository would re-tag it from each source in turn
    on every run, unless their tag selections provably cannot meet (selections_may_overlap).
    Same target = same registry host and repository once defaults and groups are resolved."""
    problems: list[Problem] = []
    writers: dict[tuple[str, str], list[tuple[int, str, TagFilter]]] = {}
    for i, m in enumerate(cfg.mappings):
        source = m.source or cfg.defaults.source
        target_names = m.targets if m.targets is not None else cfg.defaults.targets
        if source not in cfg.registries or not target_names:
            continue  # already reported
        tags = cfg.effective_tags(m)
        for name in cfg.expand_targets(target_names):
            if name not in cfg.registries:
                continue  # already reported
            target = cfg.registry(name)
            repo = target.repository(m.to or m.from_)
            earlier = writers.setdefault((target.host, repo), [])
            for j, what, other in earlier:
                if j != i and selections_may_overlap(other, tags):
                    loc: Loc = ("mappings", i) + (("to",) if "to" in m.model_fields_set else ())
                    problems.append(
                        Problem(
                            loc,
                            f"writes `{repo}` at registry `{name}` like mappings[{j}] ({what}), and their "
                            "tags can overlap (each run would re-tag them from the other): "
                            "merge the two, or give both disjoint literal tags "
                            "(`include` with `glob: []`)",
                        )
                    )
                    break
            earlier.append((i, f"`{m.from_}` from `{source}`", tags))
    return problems


# ---------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config plus what ``expand`` needs to redact secrets faithfully."""

    config: Config
    filename: str
    raw_secrets: Mapping[Loc, str]
    warnings: tuple[str, ...] = ()


# Problems reported per file: beyond that the file is probably not an ocync config at all.
_MAX_PROBLEMS = 20


def _raise(filename: str, doc: _Document, problems: list[Problem]) -> None:
    ordered = sorted(problems, key=lambda p: doc.line_of(p.loc))
    lines = [
        f"{filename}:{doc.line_of(p.loc)}: {format_loc(p.loc) + ': ' if p.loc else ''}{p.message}"
        for p in ordered[:_MAX_PROBLEMS]
    ]
    if len(ordered) > _MAX_PROBLEMS:
        lines.append(f"{filename}: ... and {len(ordered) - _MAX_PROBLEMS} more problems "
                     "(is this an ocync config?)")
    error = ConfigError("\n".join(lines))
    error.problems = lines  # type: ignore[attr-defined]
    raise error


def parse_config_text(
    text: str, filename: str = "<config>", environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Parse, expand, validate and cross-check; ConfigError with one line per problem."""
    env = os.environ if environ is None else environ
    doc = _compose(text, filename)
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{filename}:{doc.lines[()]}: the config must be a mapping "
            "(global, registries, target_groups, defaults, mappings)"
        )
    data = _expand(doc.data, (), env, doc)
    if doc.problems:
        _raise(filename, doc, doc.problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "[key]")
            problems.append(Problem(loc, _pydantic_message({**err, "loc": loc})))
        _raise(filename, doc, problems)
        raise AssertionError("unreachable") from None
    problems = _cross_check(config)
    if problems:
        _raise(filename, doc, problems)
    warnings = []
    aliased = [n for n, r in config.registries.items() if r.auth_type == "ghcr"]
    if aliased:
        warnings.append(
            f"{filename}: auth_type ghcr is deprecated, use docker_config or static_token "
            f"(registries: {', '.join(aliased)})"
        )
    for w in warnings:
        log.warning("%s", w)
    return LoadedConfig(config, filename, dict(doc.raw_secrets), tuple(warnings))


# A config with thousands of mappings is well under a MiB; 16 MiB leaves room for generated ones.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config file (ConfigError, exit 3, on any problem)."""
    return load_config_file(path, environ).config


def load_config_file(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    name = str(path)
    try:
        with Path(path).open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)  # bounded: /dev/zero or a wrong file is no config
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{name}: larger than {format_size(MAX_CONFIG_BYTES)}; not a config file?")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{name}: cannot read: {reason}") from None
    return parse_config_text(text, name, environ)


# ---------------------------------------------------------------------------------------
# expand / schema


def _escape_dollars(data: Any, loc: Loc, secrets: Mapping[Loc, str], show: bool) -> Any:
    if isinstance(data, dict):
        return {k: _escape_dollars(v, loc + (k,), secrets, show) for k, v in data.items()}
    if isinstance(data, list):
        return [_escape_dollars(v, loc + (i,), secrets, show) for i, v in enumerate(data)]
    if isinstance(data, str):
        if loc and loc[-1] in SECRET_KEYS and not show:
            raw = secrets.get(loc, "")
            # Keep the ${VAR} it came from (re-validates identically), else redact.
            return raw if "${" in raw else REDACTED
        return data.replace("$", "$$")
    return data


def expanded_data(loaded: LoadedConfig, *, show_secrets: bool = False) -> dict[str, Any]:
    """The resolved config as plain data, ``$`` escaped so it re-validates to the same model."""
    data = loaded.config.model_dump(mode="json", by_alias=True, exclude_none=True)
    result: dict[str, Any] = _escape_dollars(data, (), loaded.raw_secrets, show_secrets)
    return result


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}



__all__ = [
    "ArtifactPolicy",
    "ArtifactsConfig",
    "Config",
    "Credentials",
    "DefaultsConfig",
    "GlobalConfig",
    "LoadedConfig",
    "MappingConfig",
    "Problem",
    "RegistryConfig",
    "RegistrySettings",
    "ResolvedMapping",
    "TagsConfig",
    "docker_config_path",
    "dump_yaml",
    "effective_auth_type",
    "expanded_data",
    "format_duration",
    "format_loc",
    "format_size",
    "json_schema",
    "load_config",
    "load_config_file",
    "parse_config_text",
    "parse_duration",
    "parse_size",
    "substitute",
]
