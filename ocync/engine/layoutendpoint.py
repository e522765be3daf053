"""An OCI image layout directory as a source and a target of the one sync engine.

:class:`LayoutEndpoint` implements :mod:`ocync.engine.endpoints` over
:class:`ocync.engine.layoutstore.LayoutStore` (blocking file work in worker threads). It
sends no request: ``request_counts()`` is empty and ``statistics()`` says what it wrote.
A tag becomes visible in ``index.json`` only after its manifest, children and blobs are in
``blobs/``; concurrent tag pushes share one rewrite of ``index.json`` (coalesced).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import trio

from ocync.engine.endpoints import BlobSource
from ocync.engine.layoutstore import CHUNK, LayoutStore, layout_io
from ocync.engine.plan import MountScope
from ocync.errors import NotFound, OCIErrorEntry, OcyncError, RegistryError
from ocync.oci.digest import Digest, DigestHasher
from ocync.oci.layout import INDEX_FILE, UNNAMED, LayoutIndex, blob_path
from ocync.oci.manifest import Descriptor, Manifest, parse_manifest, verify_manifest
from ocync.registry.blobs import jittered, restart_on_temporary, verified_chunks
from ocync.registry.client import MountResult, UploadSession
from ocync.registry.profiles import RegistryProfile

LAYOUT_KEY_PREFIX = "oci-layout:"
# Tries per blob copied into a layout (ClientSettings' default ``attempts``).
BLOB_ATTEMPTS = 5


def layout_key(path: Path) -> str:
    """The host-like key of a layout (transfer cache, blob bookkeeping): its absolute path."""
    return f"{LAYOUT_KEY_PREFIX}{path.absolute()}"


# What the engine and ``ocync analyze`` read from a registry's profile, for a layout.
LAYOUT_PROFILE = RegistryProfile(
    name="oci-layout", mount_scope=MountScope.NONE, mount_probe_ok=False, referrers_api=False
)


def layout_location(host: str) -> tuple[str, str] | None:
    """(kind, path) of a layout's key (``oci-layout:/abs/path``), None for a registry host."""
    for kind in ("oci-layout", "oci-archive"):
        if host.startswith(f"{kind}:/"):
            return kind, host.removeprefix(f"{kind}:")
    return None


class LayoutEndpoint:
    """One layout directory (by its config name). ``writable``: it is a target this run
    (the write lock is held from :meth:`open` to :meth:`aclose`)."""

    profile = LAYOUT_PROFILE

    def __init__(
        self, name: str, path: Path, *, writable: bool, key: str | None = None,
        missing_ok: bool = False, seed: int | None = None,
    ) -> None:
        self._name = name
        self.missing_ok = missing_ok  # a target of a dry run that does not exist yet: empty
        self.store = LayoutStore(path)
        self.writable = writable
        self._key = key or layout_key(path)
        self._index = LayoutIndex()
        self._untagged: dict[str, Descriptor] = {}  # pushed by digest only, this run
        self._referenced: set[str] = set()  # children of indexes pushed this run
        self._generation = 0  # index changes made
        self._written = 0  # index changes on disk
        self._dirty_untagged = False
        self._index_lock = trio.Lock()
        self._backoff = jittered(seed)
        self.blobs_written = 0
        self.bytes_written = 0
        self.blobs_present = 0
        self.manifests_written = 0
        self.index_writes = 0

    async def open(self) -> None:
        """Check (source) or create and lock (target) the layout; read ``index.json``."""
        if self.writable:
            await trio.to_thread.run_sync(self.store.open_writer)
        elif self.missing_ok and not await trio.Path(self.store.root).exists():
            return
        else:
            await trio.to_thread.run_sync(self.store.check_readable)
        self._index = await trio.to_thread.run_sync(self.store.read_index)

    async def prepare(self) -> None:
        """Nothing to ask: the layout was checked when opened."""

    async def aclose(self) -> None:
        """Write what is left (digest-only pushes) and release the lock."""
        try:
            if self.writable and (self._written < self._generation or self._dirty_untagged):
                with trio.CancelScope(shield=True):
                    await self._flush(self._generation)
        finally:
            self.store.close()

    # ---- Endpoint ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def host(self) -> str:
        return self._key

    # A layout has no mount API and no referrers API (the engine keeps the sha256-<hex>
    # fallback tag, distribution-spec 1.1); a blob's presence is a stat, never a request.
    @property
    def mount_scope(self) -> MountScope:
        return MountScope.NONE

    @property
    def mount_probe_ok(self) -> bool:
        return False

    @property
    def referrers_api(self) -> bool | None:
        return False

    def request_counts(self) -> Mapping[str, int]:
        return {}

    def throttled_count(self) -> int:
        return 0

    def statistics(self) -> Mapping[str, Any]:
        return {
            "layout": str(self.store.root),
            "blobs_written": self.blobs_written,
            "bytes_written": self.bytes_written,
            "blobs_present": self.blobs_present,
            "manifests_written": self.manifests_written,
            "index_writes": self.index_writes,
        }

    def __repr__(self) -> str:
        return f"<LayoutEndpoint {self._name} {self.store!r} blobs_written={self.blobs_written}>"

    def _what(self, repo: str, ref: str) -> str:
        shown = f"{repo}:{ref}" if repo != UNNAMED else ref
        return f"{self._name} ({self.store.root}) {shown}"

    # ---- Source --------------------------------------------------------------------------
    async def list_tags(self, repo: str) -> list[str]:
        return self._index.tags(repo)

    def _resolve(self, repo: str, ref: str) -> Descriptor | None:
        if ":" in ref:  # a digest
            digest = Digest.parse(ref)
            if not self.store.has_blob(digest, None):
                return None
            return next((e for e in self._index.entries if e.digest == digest), None) or Descriptor(
                "", digest, -1
            )
        entry = self._index.find(repo, ref, exact=self.writable)
        if entry is None or not self.store.has_blob(entry.digest, entry.size):
            return None
        return entry

    async def head_manifest(self, repo: str, ref: str) -> str | None:
        found = await trio.to_thread.run_sync(self._resolve, repo, ref)
        return None if found is None else str(found.digest)

    async def get_manifest(self, repo: str, ref: str) -> Manifest:
        found = await trio.to_thread.run_sync(self._resolve, repo, ref)
        if found is None:
            raise NotFound(f"{self._what(repo, ref)}: manifest unknown", status=404, method="GET",
                           url=str(self.store.root))
        raw = await trio.to_thread.run_sync(self.store.read_manifest, found.digest)
        if raw is None:
            raise NotFound(f"{self._what(repo, ref)}: manifest unknown", status=404, method="GET",
                           url=str(self.store.root))
        verify_manifest(raw, found.digest, self._what(repo, ref))
        return parse_manifest(raw, found.media_type or None, found.digest)

    async def list_referrers(self, repo: str, digest: str) -> list[Descriptor] | None:
        return None  # no referrers API: the engine reads the sha256-<hex> fallback tag

    @contextlib.asynccontextmanager
    async def open_blob(self, repo: str, desc: Descriptor) -> AsyncIterator[AsyncIterator[bytes]]:
        what = f"blob {desc.digest} ({desc.size} bytes) from {self._name} ({self.store.root})"
        path = self.store.blob_file(desc.digest)
        with layout_io(what):
            fh = await trio.open_file(path, "rb")
        async with fh:

            async def chunks() -> AsyncGenerator[bytes, None]:
                while True:
                    with layout_io(what):
                        chunk = await fh.read(CHUNK)
                    if not chunk:
                        return
                    yield chunk

            body = chunks()
            try:
                yield verified_chunks(body, desc, what)
            finally:
                with trio.CancelScope(shield=True):
                    await body.aclose()

    async def download_blob(self, repo: str, desc: Descriptor, path: Path) -> None:
        mode = "r+b" if await trio.Path(path).exists() else "wb"  # keeps staging's reservation
        async with self.open_blob(repo, desc) as chunks, await trio.open_file(path, mode) as out:
            async for chunk in chunks:
                await out.write(chunk)
            await out.truncate()

    # ---- Target --------------------------------------------------------------------------
    def want_push(self, repo: str) -> None:
        """No tokens here."""

    @property
    def manifest_delete(self) -> bool:
        return False  # pruning into a layout is refused with the config (ocync.engine.prune)

    @property
    def tag_delete(self) -> bool | None:
        return False

    async def delete_manifest(self, repo: str, ref: str) -> bool:
        raise OcyncError(f"{self._name}: ocync does not delete from an OCI layout")

    async def head_blob(self, repo: str, desc: Descriptor) -> bool:
        # blobs/ is shared by every repository of the layout: present for one, for all
        present = await trio.to_thread.run_sync(self.store.has_blob, desc.digest, desc.size)
        self.blobs_present += present
        return present

    async def repository_exists(self, repo: str) -> bool:
        # Any blob may already be in blobs/ whatever the repository: always let the engine
        # look (a stat), never assume a fresh repository holds nothing.
        return True

    async def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> MountResult:
        raise OcyncError(f"{self._name}: an OCI layout has no mounts (mount scope none)")

    async def copy_blob(
        self,
        source: BlobSource,
        source_repo: str,
        repo: str,
        desc: Descriptor,
        session: UploadSession | None,
    ) -> None:
        """The source's verified chunks into a temporary file (hashed again as written),
        fsynced, then renamed into ``blobs/``."""
        if await trio.to_thread.run_sync(self.store.has_blob, desc.digest, desc.size):
            self.blobs_present += 1
            return
        what = f"blob {desc.digest} ({desc.size} bytes) from {source.name}/{source_repo}"

        async def once() -> None:
            tmp = self.store.temp_path(desc.digest.encoded)
            hasher = DigestHasher(desc.digest.algorithm)
            try:
                async with source.open_blob(source_repo, desc) as chunks:
                    with layout_io(f"{self._name}: writing {blob_path(desc.digest)}"):
                        async with await trio.open_file(tmp, "wb") as out:
                            async for chunk in chunks:
                                hasher.update(chunk)
                                await out.write(chunk)
                            await out.flush()
                            await trio.to_thread.run_sync(_fsync, out.fileno())
                hasher.verify(desc.digest, desc.size, what)
                await trio.to_thread.run_sync(self.store.commit_blob, tmp, desc.digest)
            except BaseException:
                self.store.discard(tmp)
                raise

        # a truncated or damaged body from a registry source is fetched again, as for a
        # registry target (a fresh temporary file each time)
        await restart_on_temporary(once, BLOB_ATTEMPTS, self._backoff, what=what)
        self.blobs_written += 1
        self.bytes_written += desc.size

    async def upload_file(
        self, repo: str, desc: Descriptor, path: Path, session: UploadSession | None
    ) -> None:
        if await trio.to_thread.run_sync(self.store.has_blob, desc.digest, desc.size):
            self.blobs_present += 1
            return
        await trio.to_thread.run_sync(self.store.copy_blob_file, path, desc.digest, desc.size)
        self.blobs_written += 1
        self.bytes_written += desc.size

    def _missing(self, manifest: Manifest) -> list[str]:
        wanted = [d for d in (*manifest.blobs(), *manifest.children()) if not d.is_foreign]
        return [str(d.digest) for d in wanted if not self.store.has_blob(d.digest, d.size)]

    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        missing = await trio.to_thread.run_sync(self._missing, manifest)
        if missing:
            # As a registry answers a manifest PUT whose blobs are not there (distribution-spec
            # "Pushing Manifests"): the engine then rechecks what a stale cache said it holds.
            raise RegistryError(
                f"{self._what(repo, ref)}: manifest references content not in the layout: "
                f"{', '.join(missing[:3])}",
                status=400, method="PUT", url=str(self.store.root),
                errors=[OCIErrorEntry("MANIFEST_BLOB_UNKNOWN")],
            )
        if not await trio.to_thread.run_sync(self.store.has_blob, manifest.digest, manifest.size):
            await trio.to_thread.run_sync(self.store.write_blob_bytes, manifest.digest, manifest.raw)
            self.manifests_written += 1
        self._referenced.update(str(c.digest) for c in manifest.children())
        if ":" in ref:  # by digest: named in index.json only if nothing pushed names it
            if str(manifest.digest) not in self._index.digests():
                self._untagged[str(manifest.digest)] = manifest.descriptor()
                self._dirty_untagged = True
            return
        if self._index.find(repo, ref, exact=True) == self._entry(manifest, repo, ref):
            return
        self._index = self._index.with_tag(repo, ref, manifest.descriptor())
        self._generation += 1
        await self._flush(self._generation)

    def _entry(self, manifest: Manifest, repo: str, ref: str) -> Descriptor | None:
        return LayoutIndex().with_tag(repo, ref, manifest.descriptor()).find(repo, ref, exact=True)

    def _on_disk(self) -> LayoutIndex:
        extra = [d for k, d in self._untagged.items() if k not in self._referenced]
        return self._index.with_untagged(extra)

    async def _flush(self, generation: int) -> None:
        """``index.json`` holding at least change ``generation``: callers that arrive while
        a rewrite runs share the next one."""
        async with self._index_lock:
            if self._written >= generation and not self._dirty_untagged:
                return
            current, self._dirty_untagged = self._generation, False
            data = self._on_disk().to_bytes()
            await trio.to_thread.run_sync(self.store.write_file, INDEX_FILE, data)
            self._written = current
            self.index_writes += 1


@contextlib.asynccontextmanager
async def open_layout_endpoint(
    name: str, kind: str, path: str, *, target: bool, dry_run: bool = False
) -> AsyncIterator[LayoutEndpoint]:
    """The endpoint of a ``type: oci-layout`` (or ``oci-archive``) entry, opened: locked for
    writing when it is a target of a real run; closed (lock released) on exit."""
    if kind == "oci-archive":
        from ocync.engine.layoutarchive import open_archive_endpoint

        async with open_archive_endpoint(name, Path(path), target=target, dry_run=dry_run) as ep:
            yield ep
        return
    endpoint = LayoutEndpoint(name, Path(path), writable=target and not dry_run, missing_ok=target)
    try:
        await endpoint.open()
        yield endpoint
    finally:
        await endpoint.aclose()


def _fsync(fd: int) -> None:
    os.fsync(fd)


__all__ = [
    "LAYOUT_KEY_PREFIX",
    "LAYOUT_PROFILE",
    "LayoutEndpoint",
    "layout_key",
    "layout_location",
    "open_layout_endpoint",
]
