"""Copy one image (manifest or index) between two registries: blobs first, then child
manifests by digest, then the top manifest under its tag (distribution-spec: a manifest may
only be pushed once everything it references exists). Used by ``ocync copy``; the sync
engine has its own planner but the same building blocks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from ocync.errors import ConfigError, OcyncError
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, Manifest
from ocync.oci.platform import Platform, trim_index
from ocync.registry.blobs import BlobTarget, copy_blob
from ocync.registry.client import RegistryClient, UploadSession
from ocync.registry.profiles import mount_allowed

log = logging.getLogger(__name__)

# Blobs copied at once per image (the controller still bounds requests per principal).
BLOB_CONCURRENCY = 8


@dataclass(slots=True)
class CopySummary:
    """What one image copy did (rendered by ``ocync copy``)."""

    digest: Digest | None = None
    manifests_pushed: int = 0
    manifests_present: int = 0
    blobs_transferred: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_transferred: int = 0
    trimmed_platforms: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": str(self.digest) if self.digest else None,
            "manifests_pushed": self.manifests_pushed,
            "manifests_present": self.manifests_present,
            "blobs_transferred": self.blobs_transferred,
            "blobs_mounted": self.blobs_mounted,
            "blobs_present": self.blobs_present,
            "bytes_transferred": self.bytes_transferred,
            "trimmed_platforms": self.trimmed_platforms,
            "warnings": self.warnings,
        }


async def copy_image(
    source: RegistryClient,
    source_repository: str,
    reference: str,
    target: RegistryClient,
    target_repository: str,
    target_tag: str | None,
    *,
    platforms: Sequence[Platform] = (),
    expected_digest: Digest | None = None,
) -> CopySummary:
    """Copy ``source_repository@reference`` to ``target_repository`` (tag or digest only).
    ``expected_digest`` (the destination's ``@digest``) must be the digest of the manifest
    to push (after any platform trimming), else nothing is written."""
    summary = CopySummary()
    target.want_push(target_repository)
    top = await source.get_manifest(source_repository, reference)
    raw, media_type = top.raw, top.media_type
    children: list[Descriptor] = []
    if top.is_index:
        # The same trimming as `ocync sync` (attestations follow their image).
        trim = trim_index(top.raw, platforms)
        raw = trim.index_bytes
        summary.warnings = trim.warnings()
        if trim.changed:
            summary.trimmed_platforms = [str(p) for p in trim.kept]
        kept = {entry.get("digest") for entry in trim.manifests}
        children = [child for child in top.manifests if str(child.digest) in kept]
    if expected_digest is not None and Digest.of(raw) != expected_digest:
        raise ConfigError(
            f"destination digest {expected_digest} does not match the manifest to push "
            f"({Digest.of(raw)}): nothing was copied"
        )
    if top.is_index:
        for child in children:
            await _copy_child(source, source_repository, child, target, target_repository, summary)
    else:
        await _copy_blobs(source, source_repository, top, target, target_repository, summary)
    if target_tag is None:
        pushed = Digest.of(raw)
        present = await target.head_manifest(target_repository, str(pushed))
        if present is None:
            await target.put_manifest(target_repository, str(pushed), raw, media_type)
    else:
        pushed = await target.put_manifest(target_repository, target_tag, raw, media_type)
    summary.manifests_pushed += 1
    summary.digest = pushed
    return summary


async def _copy_child(
    source: RegistryClient,
    source_repository: str,
    child: Descriptor,
    target: RegistryClient,
    target_repository: str,
    summary: CopySummary,
) -> None:
    if await target.head_manifest(target_repository, str(child.digest)) is not None:
        summary.manifests_present += 1
        return
    manifest = await source.get_manifest(source_repository, str(child.digest))
    if manifest.is_index:  # nested index: recurse
        for grandchild in manifest.children():
            await _copy_child(source, source_repository, grandchild, target, target_repository, summary)
    else:
        await _copy_blobs(source, source_repository, manifest, target, target_repository, summary)
    await target.put_manifest(target_repository, str(child.digest), manifest.raw, manifest.media_type)
    summary.manifests_pushed += 1


async def _copy_blobs(
    source: RegistryClient,
    source_repository: str,
    manifest: Manifest,
    target: RegistryClient,
    target_repository: str,
    summary: CopySummary,
) -> None:
    same_registry = source.base_url == target.base_url
    can_mount = same_registry and source_repository != target_repository and mount_allowed(
        target.profile, target_repository, source_repository
    )
    limiter = trio.CapacityLimiter(BLOB_CONCURRENCY)
    seen: set[Digest] = set()
    errors: list[OcyncError] = []

    async def one(blob: Descriptor) -> None:
        async with limiter:
            session: UploadSession | None = None
            if can_mount:
                mounted = await target.mount_blob(target_repository, blob.digest, source_repository)
                if mounted.mounted:
                    summary.blobs_mounted += 1
                    return
                session = mounted.session
            elif await target.head_blob(target_repository, blob.digest) is not None:
                summary.blobs_present += 1
                return
            [result] = await copy_blob(
                source, source_repository, blob, [BlobTarget(target, target_repository, session)]
            )
            if result.error is not None:
                errors.append(result.error)
                return
            summary.blobs_transferred += 1
            summary.bytes_transferred += blob.size

    async with trio.open_nursery() as nursery:
        for blob in manifest.blobs():
            if blob.digest in seen or blob.is_foreign:
                continue
            seen.add(blob.digest)
            nursery.start_soon(one, blob)
    if errors:
        raise errors[0]


__all__ = ["CopySummary", "copy_image"]
