"""The names of the registry behaviour profiles, and what the config must know of them, as
pure data.

The config validates ``profile:`` against them without importing the I/O layer;
:mod:`ocync.registry.profiles` keys its table of profiles by them (and asserts that its
profiles agree with :data:`NO_CATALOG_PROFILES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PROFILE_NAMES: tuple[str, ...] = ("generic", "ghcr", "dockerhub")

# Host -> profile name. The only place host names appear.
HOST_PROFILES: Mapping[str, str] = MappingProxyType(
    {
        "ghcr.io": "ghcr",
        "docker.io": "dockerhub",
        "registry-1.docker.io": "dockerhub",
        "index.docker.io": "dockerhub",
    }
)

# Profiles whose registry has no catalog API (GHCR's registry API has no /v2/_catalog;
# repositories are listed through GitHub's packages REST API only), so a pattern mapping
# reading from them is a config error.
NO_CATALOG_PROFILES: frozenset[str] = frozenset({"ghcr"})


def profile_name_for(host: str, name: str | None = None) -> str:
    """The profile named in config (``profile:``), else the host table's, else generic."""
    return name or HOST_PROFILES.get(host.lower(), "generic")


__all__ = ["HOST_PROFILES", "NO_CATALOG_PROFILES", "PROFILE_NAMES", "profile_name_for"]
