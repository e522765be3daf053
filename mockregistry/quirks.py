"""Registry profiles (generic, ghcr, dockerhub) and fault injection, as data.

A profile is a frozen bundle of behaviours; code reads its fields and never tests host names.
GHCR behaviours are those observed on ghcr.io (its last-PATCH-wins uploads, namespace-scoped
mounts and one request cap per principal are also listed in ocync's GHCR guide); the generic profile
follows the CNCF distribution registry 2.8 where the OCI Distribution Spec 1.1 is silent.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

MiB = 1 << 20

# OCI Distribution Spec 1.1 lets registries cap manifest size; 4 MiB is distribution's and GHCR's.
MANIFEST_MAX_BYTES = 4 * MiB


class OptionsError(ValueError):
    """An invalid mock option (bad rate text, unknown profile, ...)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` requests per sliding ``window`` seconds, per principal."""

    count: int
    window: float

    def describe(self) -> str:
        """The ``allowed:`` part of GHCR's 429 message, e.g. ``2000/minute``."""
        unit = {1.0: "second", 60.0: "minute", 3600.0: "hour"}.get(float(self.window))
        return f"{self.count}/{unit}" if unit else f"{self.count}/{go_duration(self.window)}"


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def parse_rate(text: str) -> RateLimit:
    """Parse ``COUNT/WINDOW`` such as ``2000/60s``, ``500/5s``, ``10/1m``, ``5/500ms``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|)\s*", text)
    if not match:
        raise OptionsError(f"bad rate limit {text!r}: expected COUNT/WINDOW such as 2000/60s")
    count = int(match.group(1))
    window = float(match.group(2) or 1) * _UNITS[match.group(3)]
    if count <= 0 or window <= 0:
        raise OptionsError(f"bad rate limit {text!r}: count and window must be positive")
    return RateLimit(count, window)


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration.String`` (GHCR's ``retry-after: 10.487765ms``)."""
    ns = round(seconds * 1e9)
    if ns <= 0:
        return "0s"

    def frac(value: int, unit: int, digits: int) -> str:
        whole, rest = divmod(value, unit)
        if not rest:
            return str(whole)
        return f"{whole}." + str(rest).rjust(digits, "0").rstrip("0")

    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return frac(ns, 1_000, 3) + "µs"
    if ns < 1_000_000_000:
        return frac(ns, 1_000_000, 6) + "ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = frac(rest, 1_000_000_000, 9) + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything that differs between the registries the mock imitates."""

    name: str
    # GHCR: each PATCH replaces the upload content (multi-PATCH uploads end in DIGEST_INVALID).
    last_patch_wins: bool = False
    # GHCR: a PATCH carrying Content-Range with a body over this many bytes gets 416.
    max_ranged_patch: int | None = None
    # GHCR: mount only works when `from` is in the target's namespace (first path component).
    mount_same_namespace_only: bool = False
    # OCI 1.1 referrers API; GHCR answers 404 MANIFEST_UNKNOWN (clients use the tag fallback).
    referrers_api: bool = True
    # GHCR: blob GETs answer 307 to a separate storage host with a signed, expiring URL.
    blob_redirect: bool = False
    # Tags per page when the client sends no `n` (GHCR: 100; distribution: all).
    tags_page_size: int | None = None
    # Repositories per catalog page when the client sends no `n` (distribution: 100).
    catalog_page_size: int = 100
    # GHCR sends no Retry-After header with its 429s.
    retry_after_header: bool = False
    # Whether throttled (429) requests count toward the window (GHCR: observed not to).
    count_rejected: bool = False
    rate_limit: RateLimit | None = None
    # `uploads` (distribution, the OCI spec) or `upload` (GHCR's Location shape).
    upload_segment: str = "uploads"
    # distribution answers absolute Location URLs and adds an opaque `_state` query.
    absolute_locations: bool = True
    upload_state_param: bool = True
    # distribution 2.8 answers `"tags": null` for a repository whose tags are all gone (Go nil slice).
    empty_tags_null: bool = True
    # distribution 2.8: an OCI manifest/index fetched by tag without its type in Accept is a 404.
    oci_by_tag_needs_accept: bool = True
    manifest_max_bytes: int = MANIFEST_MAX_BYTES
    # Lifetime of signed storage URLs (GHCR's are valid for a few minutes).
    redirect_ttl: float = 300.0
    # Docker Hub: manifest GETs (pulls) per principal per rolling window (pullquota.py).
    pull_limit: RateLimit | None = None


GENERIC = Profile(name="generic")
GHCR = Profile(
    name="ghcr",
    last_patch_wins=True,
    max_ranged_patch=4 * MiB,
    mount_same_namespace_only=True,
    referrers_api=False,
    blob_redirect=True,
    tags_page_size=100,
    retry_after_header=False,
    count_rejected=False,
    # GHCR documents no number; 2000 requests/minute is what its 429 message reports.
    rate_limit=RateLimit(2000, 60.0),
    upload_segment="upload",
    absolute_locations=False,
    upload_state_param=False,
    oci_by_tag_needs_accept=False,
    empty_tags_null=False,
)
# Docker Hub (docs.docker.com "Docker Hub pull usage and limits"): distribution underneath,
# with a pull quota; 100 pulls per 6 hours is the documented ratelimit-limit example.
DOCKERHUB = Profile(name="dockerhub", pull_limit=RateLimit(100, 6 * 3600.0))
PROFILES: Mapping[str, Profile] = {"generic": GENERIC, "ghcr": GHCR, "dockerhub": DOCKERHUB}


@dataclass(frozen=True, slots=True)
class MockOptions:
    """Everything a mock registry is started with (the CLI flags map onto these fields)."""

    profile: str = "generic"
    last_patch_wins: bool | None = None
    mount_same_namespace_only: bool | None = None
    referrers_api: bool | None = None
    blob_redirect: bool | None = None
    tags_page_size: int | None = None
    catalog_page_size: int | None = None
    retry_after_header: bool | None = None
    count_rejected: bool | None = None
    # "COUNT/WINDOW"; None = the profile's default; "off" disables it.
    rate_limit: str | None = None
    # "COUNT/WINDOW" pulls (manifest GETs); None = the profile's default; "off" disables it.
    pull_limit: str | None = None
    auth: str = "none"
    users: Mapping[str, str] = field(default_factory=dict)
    user_namespaces: Mapping[str, Sequence[str]] = field(default_factory=dict)
    public: Sequence[str] = field(default_factory=list)
    fault_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    # the first N bodies served of every blob are damaged, later ones intact: corruption in
    # transit that a refetch gets past, deterministic whatever order the blobs are asked in
    corrupt_first: int = 0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    seed: int = 0
    storage_dir: Path | None = None
    access_log: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    storage_port: int = 0

    def resolve_profile(self) -> Profile:
        """The profile with this option set's toggles applied."""
        base = PROFILES.get(self.profile)
        if base is None:
            raise OptionsError(f"unknown profile {self.profile!r} (expected one of {sorted(PROFILES)})")
        if self.auth not in ("none", "token"):
            raise OptionsError(f"unknown auth mode {self.auth!r} (expected none or token)")
        for name in ("fault_rate", "reset_rate", "truncate_rate", "corrupt_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise OptionsError(f"{name} must be between 0 and 1, not {value}")
        if self.corrupt_first < 0:
            raise OptionsError(f"corrupt_first must be 0 or more, not {self.corrupt_first}")
        profile = base
        toggles = {
            "last_patch_wins": self.last_patch_wins,
            "mount_same_namespace_only": self.mount_same_namespace_only,
            "referrers_api": self.referrers_api,
            "blob_redirect": self.blob_redirect,
            "tags_page_size": self.tags_page_size,
            "catalog_page_size": self.catalog_page_size,
            "retry_after_header": self.retry_after_header,
            "count_rejected": self.count_rejected,
        }
        changes = {key: value for key, value in toggles.items() if value is not None}
        if changes:
            profile = replace(profile, **changes)  # type: ignore[arg-type]
        if self.rate_limit is not None:
            text = self.rate_limit.strip().lower()
            limit = None if text in ("off", "none", "0", "") else parse_rate(self.rate_limit)
            profile = replace(profile, rate_limit=limit)
        if self.pull_limit is not None:
            text = self.pull_limit.strip().lower()
            pulls = None if text in ("off", "none", "0", "") else parse_rate(self.pull_limit)
            profile = replace(profile, pull_limit=pulls)
        return profile


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities of each injected fault, per request (or per served blob body)."""

    fault_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    corrupt_first: int = 0  # bodies of each blob damaged before it is served intact
    latency: float = 0.0
    latency_jitter: float = 0.0


# Statuses a flaky registry or its load balancer answers.
FAULT_STATUSES = (500, 502, 503)


class FaultInjector:
    """Seeded, deterministic fault decisions; the server applies them to bytes on the wire.

    Faults only ever alter what is sent, never what is stored.
    """

    def __init__(self, rates: FaultRates, seed: int) -> None:
        self.rates = rates
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {}
        self._served: dict[str, int] = {}  # blob digest -> bodies served (corrupt_first)

    @property
    def active(self) -> bool:
        r = self.rates
        return any((r.fault_rate, r.reset_rate, r.truncate_rate, r.corrupt_rate, r.corrupt_first, r.latency,
                    r.latency_jitter))

    def _hit(self, rate: float, name: str) -> bool:
        if rate <= 0.0:
            return False
        hit = self._rng.random() < rate
        if hit:
            self.injected[name] = self.injected.get(name, 0) + 1
        return hit

    def latency(self) -> float:
        """Seconds to wait before answering."""
        r = self.rates
        if not r.latency and not r.latency_jitter:
            return 0.0
        return max(0.0, r.latency + (self._rng.uniform(-1, 1) * r.latency_jitter))

    def server_error(self) -> int | None:
        if self._hit(self.rates.fault_rate, "server_error"):
            return self._rng.choice(FAULT_STATUSES)
        return None

    def reset(self) -> bool:
        return self._hit(self.rates.reset_rate, "reset")

    def body_fault(self, length: int, digest: str = "") -> BodyFault | None:
        """A fault for a body of ``length`` bytes of blob ``digest``, or None to send it intact."""
        if length <= 0:
            return None
        if self.rates.corrupt_first and digest:
            served = self._served.get(digest, 0)
            self._served[digest] = served + 1
            if served < self.rates.corrupt_first:
                self.injected["corrupt"] = self.injected.get("corrupt", 0) + 1
                return BodyFault("corrupt", length // 2)
        if self._hit(self.rates.reset_rate, "reset"):
            return BodyFault("reset", self._rng.randrange(length))
        if self._hit(self.rates.truncate_rate, "truncate"):
            return BodyFault("truncate", self._rng.randrange(length))
        if self._hit(self.rates.corrupt_rate, "corrupt"):
            return BodyFault("corrupt", self._rng.randrange(length))
        return None

    def statistics(self) -> dict[str, int]:
        return dict(self.injected)

    def __repr__(self) -> str:
        return f"FaultInjector({self.rates!r}, injected={self.injected})"


@dataclass(frozen=True, slots=True)
class BodyFault:
    """``reset``/``truncate``: stop after ``offset`` bytes; ``corrupt``: flip the byte at ``offset``."""

    kind: str
    offset: int
