"""The names of the registry behaviour profiles, as pure data.

The config validates ``profile:`` against them without importing the I/O layer;
:mod:`ocync.registry.profiles` keys its table of profiles by them.
"""

from __future__ import annotations

PROFILE_NAMES: tuple[str, ...] = ("generic", "ghcr", "dockerhub")

__all__ = ["PROFILE_NAMES"]
