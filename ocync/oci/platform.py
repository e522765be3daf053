"""Platforms (``os/arch[/variant]``) and trimming an image index to the ones asked for.

An image index lists one descriptor per platform (OCI image-spec ``image-index.md``,
``manifests[].platform``). With a platform filter the pushed index keeps only the matching
entries, so its bytes and digest change; without one the index is copied verbatim. BuildKit
attaches provenance/SBOM "attestation manifests" as ``unknown/unknown`` entries pointing at
their image through the ``vnd.docker.reference.digest`` annotation: they follow their image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ocync.errors import ConfigError, ManifestError, NoMatchingPlatform

_PART = re.compile(r"[a-z0-9][a-z0-9._-]*")
# BuildKit attestation entries (docker buildx --attest; moby/buildkit docs/attestations).
ATTESTATION_REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_REFERENCE_TYPE = "vnd.docker.reference.type"

# Variants a platform has when its descriptor omits one (containerd's platforms.Normalize).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    """``os/architecture[/variant]`` (image-index.md ``platform``), plus the rarely used
    ``os.version`` / ``os.features`` of an index entry, which take no part in equality or
    matching (a filter names os/arch/variant only)."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = field(default=None, compare=False)
    os_features: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``linux/amd64`` or ``linux/arm/v7``; ConfigError otherwise."""
        if not isinstance(text, str):
            raise ConfigError(f"platform must be a string like linux/amd64, got {text!r}")
        pieces = text.strip().split("/")
        if len(pieces) not in (2, 3) or not all(_PART.fullmatch(p) for p in pieces):
            raise ConfigError(
                f"invalid platform {text!r}: expected os/arch or os/arch/variant "
                "in lowercase, e.g. linux/amd64 or linux/arm/v7"
            )
        return cls(pieces[0], pieces[1], pieces[2] if len(pieces) == 3 else None)

    @classmethod
    def from_descriptor(cls, descriptor: Mapping[str, Any]) -> Platform | None:
        """The ``platform`` of an index entry, or None when it has none or it is malformed."""
        platform = descriptor.get("platform")
        return platform_from_config(platform) if isinstance(platform, Mapping) else None

    def matches(self, other: Platform) -> bool:
        """Whether an index entry's platform ``other`` satisfies this requested platform.

        Without a variant, any variant matches; with one, the entry's variant (or its
        architecture's default, ``arm64`` -> ``v8``) must be equal.
        """
        if self.os != other.os or self.architecture != other.architecture:
            return False
        if self.variant is None:
            return True
        theirs = other.variant or _DEFAULT_VARIANT.get(other.architecture)
        return self.variant == theirs

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def parse_platforms(texts: Sequence[str]) -> tuple[Platform, ...]:
    return tuple(dict.fromkeys(Platform.parse(t) for t in texts))


def _is_attestation(descriptor: Mapping[str, Any]) -> bool:
    annotations = descriptor.get("annotations")
    return isinstance(annotations, Mapping) and ATTESTATION_REFERENCE_DIGEST in annotations


@dataclass(frozen=True, slots=True)
class IndexTrim:
    """The result of trimming an index: new bytes, the kept entries and what to report."""

    index_bytes: bytes
    manifests: tuple[dict[str, Any], ...]
    changed: bool
    kept: tuple[Platform, ...]
    dropped: tuple[Platform, ...]
    missing: tuple[Platform, ...]  # requested but absent at the source: a warning each
    available: tuple[Platform, ...]

    def warnings(self) -> list[str]:
        have = ", ".join(str(p) for p in self.available) or "none"
        return [f"platform {p} not in the source index (it has: {have})" for p in self.missing]


def trim_index(index_bytes: bytes, requested: Sequence[Platform]) -> IndexTrim:
    """Keep only the index entries matching ``requested`` (plus their attestations).

    When every entry is kept the original bytes are returned unchanged (same digest).
    Raises NoMatchingPlatform, listing the platforms the source has, when nothing matches,
    and ManifestError when the bytes are not a JSON index.
    """
    try:
        doc = json.loads(index_bytes)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ManifestError(f"index is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise ManifestError("not an image index: no manifests list")
    entries: list[dict[str, Any]] = [e for e in doc["manifests"] if isinstance(e, dict)]
    platforms = [Platform.from_descriptor(e) for e in entries]
    available = tuple(
        dict.fromkeys(
            p for e, p in zip(entries, platforms, strict=True)
            if p is not None and not _is_attestation(e)
        )
    )
    if not requested:
        return IndexTrim(index_bytes, tuple(entries), False, available, (), (), available)

    keep = [
        p is not None and not _is_attestation(e) and any(r.matches(p) for r in requested)
        for e, p in zip(entries, platforms, strict=True)
    ]
    kept_digests = {e.get("digest") for e, k in zip(entries, keep, strict=True) if k}
    if not kept_digests:
        have = ", ".join(str(p) for p in available) or "none"
        want = ", ".join(str(r) for r in requested)
        raise NoMatchingPlatform(f"no platform matches {want}; the source has: {have}")
    for i, entry in enumerate(entries):
        if not keep[i] and _is_attestation(entry):
            keep[i] = entry["annotations"].get(ATTESTATION_REFERENCE_DIGEST) in kept_digests

    kept_entries = tuple(e for e, k in zip(entries, keep, strict=True) if k)
    kept = tuple(
        dict.fromkeys(
            p for e, p, k in zip(entries, platforms, keep, strict=True)
            if k and p is not None and not _is_attestation(e)
        )
    )
    dropped = tuple(p for p in available if p not in kept)
    missing = tuple(r for r in requested if not any(r.matches(p) for p in available))
    if len(kept_entries) == len(doc["manifests"]):
        return IndexTrim(index_bytes, kept_entries, False, kept, dropped, missing, available)
    new_doc = dict(doc)
    new_doc["manifests"] = list(kept_entries)
    new_bytes = json.dumps(new_doc, separators=(",", ":"), ensure_ascii=False).encode()
    return IndexTrim(new_bytes, kept_entries, True, kept, dropped, missing, available)


def platform_from_config(config: Mapping[str, Any]) -> Platform | None:
    """The platform of a single-platform image, from its config blob (os, architecture,
    variant: image-spec config.md); an index entry's ``platform`` object has the same fields."""
    os_, arch = config.get("os"), config.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str):
        return None
    variant = config.get("variant")
    return Platform(os_, arch, variant if isinstance(variant, str) and variant else None)


__all__ = [
    "ATTESTATION_REFERENCE_DIGEST",
    "IndexTrim",
    "NoMatchingPlatform",
    "Platform",
    "parse_platforms",
    "platform_from_config",
    "trim_index",
]
