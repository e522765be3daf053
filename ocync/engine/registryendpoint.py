"""The engine's endpoint protocols over :class:`ocync.registry.client.RegistryClient`.

One ``ClientEndpoint`` per configured registry serves as source and as target; every
request it sends goes through the principal's controller inside the client. Blob streaming,
upload strategies and their retries are the client's (``ocync.registry.blobs``); this
module adds the two staging operations (download to a file, upload from a file) with the
same restart-on-temporary-failure rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import trio

from ocync.engine.endpoints import BlobSource
from ocync.engine.plan import MountScope
from ocync.engine.pullplan import PullPlanner
from ocync.errors import OcyncError, with_message
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, Manifest
from ocync.registry.blobs import (
    jittered,
    open_verified_blob,
    restart_on_temporary,
    restart_upload,
    upload_blob,
    verified_chunks,
)
from ocync.registry.bodyrelay import StagedFile
from ocync.registry.client import MountResult, RegistryClient, UploadSession, registry_error


class ClientEndpoint:
    """A configured registry (by its config name) as a source and a target."""

    def __init__(self, name: str, client: RegistryClient, *, seed: int | None = None) -> None:
        self._name = name
        self.client = client
        self._backoff = jittered(seed)
        self._referrers_unsupported = False
        self._referrers_supported = False
        self._referrers_probe: trio.Event | None = None
        quota = client.pull_quota
        self.pull_planner = PullPlanner(quota) if quota is not None else None

    # ---- Endpoint ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def host(self) -> str:
        return self.client.host

    @property
    def mount_scope(self) -> MountScope:
        return self.client.profile.mount_scope

    @property
    def mount_probe_ok(self) -> bool:
        return self.client.profile.mount_probe_ok

    @property
    def referrers_api(self) -> bool | None:
        return self.client.profile.referrers_api

    def request_counts(self) -> Mapping[str, int]:
        return dict(self.client.statistics().by_kind)

    def throttled_count(self) -> int:
        return self.client.statistics().throttled

    def statistics(self) -> Mapping[str, Any]:
        return {
            "principal": self.client.principal,
            "profile": self.client.profile.name,
            "client": self.client.statistics().to_dict(),
            "controller": self.client.controller.statistics().to_dict(),
            **({"pull_quota": self.pull_planner.statistics().to_dict()} if self.pull_planner is not None else {}),
        }

    async def prepare(self) -> None:
        """``GET /v2/`` once: learns the auth challenge up front, so concurrent first requests
        fetch one token per scope instead of each collecting a 401 first."""
        try:
            await self.client.ping()
        except OcyncError as exc:
            raise with_message(exc, f"registry {self._name}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<ClientEndpoint {self._name} {self.client!r}>"

    # ---- Source --------------------------------------------------------------------------
    async def list_tags(self, repo: str) -> list[str]:
        return await self.client.list_tags(repo)

    async def catalog_page(self, cursor: str | None) -> tuple[list[str], str | None]:
        return await self.client.catalog_page(cursor)

    async def head_manifest(self, repo: str, ref: str) -> str | None:
        head = await self.client.head_manifest(repo, ref)
        return None if head is None else str(head.digest)

    async def get_manifest(self, repo: str, ref: str) -> Manifest:
        return await self.client.get_manifest(repo, ref)

    async def list_referrers(self, repo: str, digest: str) -> list[Descriptor] | None:
        # Once a registry has shown it lacks the referrers API (distribution 2.8 answers
        # 404), stop asking: the tag-schema fallback is the answer for the rest of the run.
        # Until the first answer, one request asks and concurrent callers wait for it
        # (artifacts.refresh would otherwise send one doomed probe per tag in flight).
        while not self._referrers_unsupported and not self._referrers_supported:
            if self._referrers_probe is None:
                break
            await self._referrers_probe.wait()
        if self._referrers_unsupported:
            return None
        probing = not self._referrers_supported
        if probing:
            self._referrers_probe = trio.Event()
        try:
            found = await self.client.referrers(repo, Digest.parse(digest))
        finally:
            if probing and self._referrers_probe is not None:
                self._referrers_probe.set()
                self._referrers_probe = None
        if found is None:
            self._referrers_unsupported = True
        else:
            self._referrers_supported = True
        return found

    async def download_blob(self, repo: str, desc: Descriptor, path: Path) -> None:
        what = f"blob {desc.digest} from {self._name}/{repo}"

        async def once() -> None:
            # "r+b" keeps the space staging reserved for the file (see reserve_file)
            mode = "r+b" if await trio.Path(path).exists() else "wb"
            async with self.client.open_blob(repo, desc.digest) as stream:
                async with await trio.open_file(path, mode) as fh:
                    async for chunk in verified_chunks(stream.chunks(), desc, what, received=True):
                        await fh.write(chunk)
                    await fh.truncate()

        await restart_on_temporary(once, self.client.settings.attempts, self._backoff, what=what)

    @contextlib.asynccontextmanager
    async def open_blob(self, repo: str, desc: Descriptor) -> AsyncIterator[AsyncIterator[bytes]]:
        what = f"blob {desc.digest} ({desc.size} bytes) from {self._name}/{repo}"
        async with open_verified_blob(self.client, repo, desc, what) as chunks:
            yield chunks

    # ---- Target --------------------------------------------------------------------------
    def want_push(self, repo: str) -> None:
        self.client.want_push(repo)

    @property
    def manifest_delete(self) -> bool:
        return self.client.profile.manifest_delete

    @property
    def tag_delete(self) -> bool | None:
        return self.client.profile.tag_delete

    async def delete_manifest(self, repo: str, ref: str) -> bool:
        return await self.client.delete_manifest(repo, ref)

    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        await self.client.put_manifest(repo, ref, manifest.raw, manifest.media_type)

    async def head_blob(self, repo: str, desc: Descriptor) -> bool:
        return await self.client.head_blob(repo, desc.digest) is not None

    async def repository_exists(self, repo: str) -> bool:
        url = self.client.url(f"{repo}/tags/list") + "?n=1"
        response = await self.client.send("tags_list", "GET", url, repo, ok=(200, 404), push=False)
        if response.status == 404:
            return False
        if response.status != 200:
            raise registry_error("GET", url, response.status, response.body, f"listing tags of {repo}")
        return True

    async def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> MountResult:
        return await self.client.mount_blob(repo, desc.digest, from_repo)

    async def copy_blob(
        self,
        source: BlobSource,
        source_repo: str,
        repo: str,
        desc: Descriptor,
        session: UploadSession | None,
    ) -> None:
        """One source read per attempt streamed into one upload (hash verified in flight);
        temporary failures restart both, with a fresh session."""
        what = f"blob {desc.digest} ({desc.size} bytes) from {source.name}/{source_repo}"

        async def once(use: UploadSession | None) -> None:
            # Open the source first: an upload never holds a window slot waiting for a GET.
            async with source.open_blob(source_repo, desc) as chunks:
                await upload_blob(self.client, repo, desc, chunks, session=use, verify=False)

        await restart_upload(once, session, self.client.settings.attempts, self._backoff, what=what)

    async def upload_file(
        self, repo: str, desc: Descriptor, path: Path, session: UploadSession | None
    ) -> None:
        async def once(use: UploadSession | None) -> None:
            # sent from the file by os.sendfile; its bytes were verified once, when staged
            body = cast(AsyncIterable[bytes], StagedFile(path, desc.size))  # FileSpan pieces
            await upload_blob(self.client, repo, desc, body, session=use, verify=False)

        what = f"blob {desc.digest} to {self._name}/{repo}"
        await restart_upload(once, session, self.client.settings.attempts, self._backoff, what=what)


__all__ = ["ClientEndpoint"]
