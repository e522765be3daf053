"""What the engine needs from a registry, as two small protocols.

The engine talks to sources and targets only through these; ``ocync.engine.registryendpoint``
implements them over :mod:`ocync.registry` (every request through the principal's
controller), and the unit tests implement them in memory. Keeping the seam narrow lets the
pipeline be tested deterministically under ``trio.testing.MockClock``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ocync.engine.plan import MountScope
from ocync.oci.manifest import Descriptor, Manifest
from ocync.registry.client import MountResult, UploadSession


class Endpoint(Protocol):
    """Common to both directions: identity and request statistics."""

    @property
    def name(self) -> str:
        """The registry's name in the config."""
        ...

    @property
    def host(self) -> str:
        """The registry host (the transfer cache's key)."""
        ...

    def request_counts(self) -> Mapping[str, int]:
        """Requests sent so far, by request kind (shared-contract kinds)."""
        ...

    def throttled_count(self) -> int:
        """Responses that were throttle signals (429 and friends)."""
        ...

    def statistics(self) -> Mapping[str, Any]:
        """Anything else worth reporting (controller statistics)."""
        ...


class BlobSource(Protocol):
    """Where a blob's bytes come from: any source endpoint (a registry, an OCI image layout
    on disk). Targets copy from any of them."""

    @property
    def name(self) -> str: ...

    def open_blob(
        self, repo: str, desc: Descriptor
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's chunks, verified against ``desc`` (digest and size) as they are read:
        a mismatch raises before the last chunk is passed on."""
        ...


class SourceEndpoint(Endpoint, BlobSource, Protocol):
    async def list_tags(self, repo: str) -> list[str]:
        """Every tag, following pagination."""
        ...

    async def head_manifest(self, repo: str, ref: str) -> str | None:
        """The manifest digest behind ``ref`` or None when absent (404)."""
        ...

    async def get_manifest(self, repo: str, ref: str) -> Manifest:
        """The manifest bytes, verified when fetched by digest; NotFound when absent."""
        ...

    async def list_referrers(self, repo: str, digest: str) -> list[Descriptor] | None:
        """Referrers of ``digest`` via the OCI 1.1 API; None when the API is unsupported."""
        ...

    async def download_blob(self, repo: str, desc: Descriptor, path: Path) -> None:
        """Fetch the blob into ``path``, verified against its digest and size (staging)."""
        ...


@runtime_checkable
class CatalogSource(Protocol):
    """A source that can list its repositories (pattern mappings); a registry does it with
    ``GET /v2/_catalog``. Not every source can (GHCR cannot, config refuses it first)."""

    async def catalog_page(self, cursor: str | None) -> tuple[list[str], str | None]:
        """The repositories of one page and the cursor of the next (None: the last page);
        ``cursor`` None is the first page."""
        ...


class TargetEndpoint(Endpoint, Protocol):
    @property
    def mount_scope(self) -> MountScope: ...

    @property
    def mount_probe_ok(self) -> bool:
        """A mount from the target repository itself is an honest existence probe."""
        ...

    @property
    def referrers_api(self) -> bool | None:
        """True: the registry indexes pushed referrers itself; otherwise the engine keeps
        the ``sha256-<hex>`` fallback tag up to date (distribution-spec 1.1)."""
        ...

    def want_push(self, repo: str) -> None:
        """From now on ask for push access to ``repo`` with the first token (saves one)."""
        ...

    async def head_manifest(self, repo: str, ref: str) -> str | None: ...

    async def get_manifest(self, repo: str, ref: str) -> Manifest:
        """NotFound when absent (reads the target's referrers tag-schema index)."""
        ...

    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None: ...

    @property
    def manifest_delete(self) -> bool:
        """The distribution API can delete manifests here (pruning; not on GHCR)."""
        ...

    @property
    def tag_delete(self) -> bool | None:
        """``DELETE .../manifests/<tag>`` works: True, False (delete by digest), None (try)."""
        ...

    async def list_tags(self, repo: str) -> list[str]:
        """Every tag of the target repository (pruning checks what else shares a digest)."""
        ...

    async def delete_manifest(self, repo: str, ref: str) -> bool:
        """``DELETE /v2/<repo>/manifests/<ref>`` (tag or digest): True deleted, False absent
        (404); RegistryError otherwise (405 UNSUPPORTED: deletes disabled)."""
        ...

    async def head_blob(self, repo: str, desc: Descriptor) -> bool: ...

    async def repository_exists(self, repo: str) -> bool:
        """One tag-list page (``n=1``): False on 404 NAME_UNKNOWN."""
        ...

    async def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> MountResult:
        """A mount POST: 201 -> ``mounted``; 202 -> not fulfilled, ``session`` to upload on."""
        ...

    async def copy_blob(
        self,
        source: BlobSource,
        source_repo: str,
        repo: str,
        desc: Descriptor,
        session: UploadSession | None,
    ) -> None:
        """Stream the blob from the source into ``repo`` (hash verified in flight; retried)."""
        ...

    async def upload_file(
        self, repo: str, desc: Descriptor, path: Path, session: UploadSession | None
    ) -> None:
        """Upload a staged, already verified blob file."""
        ...


__all__ = ["BlobSource", "CatalogSource", "Endpoint", "SourceEndpoint", "TargetEndpoint"]
