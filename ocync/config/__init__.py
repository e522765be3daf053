"""The sync config: YAML with line numbers, ``${VAR}`` expansion, pydantic models, resolution.

The only package importing pydantic or yaml. A file is composed into plain data that keeps
the line of every value (``yamlsource``), expanded (``envsubst``), validated by the models
(``models``, with ``units`` for durations, sizes and rates; ``messages`` words pydantic's
errors), then cross-checked (``crosscheck``). Every problem becomes one line
``FILE:LINE: mappings[3].tags.latest: what is wrong`` (``problems``); all of them are raised
together as one ConfigError, exit 3 (``load``). :meth:`Config.resolve` turns each mapping
into a flat, frozen :class:`ResolvedMapping` for the engine (``resolve``), so nothing
downstream sees pydantic.
"""

from ocync.config.envsubst import substitute
from ocync.config.load import (
    MAX_CONFIG_BYTES,
    LoadedConfig,
    expanded_data,
    json_schema,
    load_config,
    load_config_file,
    parse_config_text,
)
from ocync.config.models import (
    ArtifactsConfig,
    Config,
    Credentials,
    DefaultsConfig,
    GlobalConfig,
    MappingConfig,
    RegistryConfig,
    TagsConfig,
)
from ocync.config.problems import Problem, format_loc
from ocync.config.resolve import (
    DEFAULT_ARTIFACTS_REFRESH,
    ArtifactPolicy,
    PrunePolicy,
    RegistrySettings,
    ResolvedMapping,
    effective_auth_type,
)
from ocync.config.units import format_duration, format_size, parse_duration, parse_size
from ocync.config.yamlsource import dump_yaml

__all__ = [
    "DEFAULT_ARTIFACTS_REFRESH",
    "MAX_CONFIG_BYTES",
    "ArtifactPolicy",
    "ArtifactsConfig",
    "Config",
    "Credentials",
    "DefaultsConfig",
    "GlobalConfig",
    "LoadedConfig",
    "MappingConfig",
    "Problem",
    "PrunePolicy",
    "RegistryConfig",
    "RegistrySettings",
    "ResolvedMapping",
    "TagsConfig",
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
