"""ClientSettings: what a config ``registries:`` entry or the CLI flags say about one
registry (credential source, profile, caps, TLS, attempts, timeouts), frozen and hashable so
a pool can key its clients by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ocync.registry.auth import AuthSettings


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Per-registry settings (config ``registries:`` entries or CLI flags)."""

    auth: AuthSettings = field(default_factory=AuthSettings)
    profile: str | None = None  # None: chosen by host (profiles.HOST_PROFILES)
    rate_limit: str | None = None  # overrides the profile's documented cap ("2000/60s")
    max_concurrent: int | None = None
    insecure: bool = False  # plain HTTP (or unverified TLS for an explicit https:// URL)
    rate_share: float | None = None
    min_remaining: int = 0  # pulls a pull quota keeps unspent (config min_remaining)
    attempts: int = 5  # tries per request / per blob transfer
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


__all__ = ["ClientSettings"]
