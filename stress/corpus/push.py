"""Pushing a planned corpus to a registry, the OCI Distribution Spec 1.1 way: blobs (mounted
from another repository of the same push when possible), then child manifests, then the tagged
manifest; referrers through the API, or the `sha256-<hex>` tag fallback when the registry answers
a referrer's PUT without `OCI-Subject`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import trio

from stress.corpus.client import make_client, send_with_retry
from stress.corpus.plan import (
    OCI_INDEX,
    Blob,
    Corpus,
    CorpusSpec,
    Image,
    Manifest,
    build_corpus,
    compact_json,
    referrers_tag,
    sha256_digest,
)


class PushError(RuntimeError):
    """A registry refused part of the corpus; the message names the request and the status."""


@dataclass(slots=True)
class PushStats:
    requests: int = 0
    blobs_uploaded: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    bytes_uploaded: int = 0
    manifests_pushed: int = 0
    fallback_tags: int = 0
    throttled: int = 0
    referrers_api: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class CorpusPusher:
    """Pushes a `Corpus` to one registry; retries 429/5xx with the registry's hint, then gives up."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        mount: bool = True,
        max_attempts: int = 8,
    ) -> None:
        self.client = client
        self.base = httpx.URL(base_url.rstrip("/") + "/")
        self.mount = mount
        self.max_attempts = max_attempts
        self.stats = PushStats()
        self._holders: dict[str, str] = {}  # blob digest -> a repo known to hold it

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        ok: tuple[int, ...],
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        target = self.base.join(url)

        def count(response: httpx.Response) -> None:
            self.stats.requests += 1
            self.stats.throttled += response.status_code == 429

        response = await send_with_retry(
            self.client,
            method,
            target,
            content=content,
            headers=headers,
            max_attempts=self.max_attempts,
            observe=count,
        )
        if response.status_code in ok:
            return response
        raise PushError(
            f"{method} {target.path} -> {response.status_code}: {response.text[:200].strip()}"
        )

    async def push_blob(self, repo: str, blob: Blob) -> None:
        head = await self.request("HEAD", f"v2/{repo}/blobs/{blob.digest}", ok=(200, 404))
        if head.status_code == 200:
            self.stats.blobs_present += 1
            self._holders.setdefault(blob.digest, repo)
            return
        source = self._holders.get(blob.digest)
        if self.mount and source is not None and source != repo:
            start = await self.request(
                "POST",
                httpx.URL(
                    f"v2/{repo}/blobs/uploads/", params={"mount": blob.digest, "from": source}
                ),
                ok=(201, 202),
            )
            if start.status_code == 201:
                self.stats.blobs_mounted += 1
                return
        else:
            start = await self.request("POST", f"v2/{repo}/blobs/uploads/", ok=(202,))
        location = self.base.join(start.headers["location"])
        # Keep the session's own query (distribution's `_state`) and add the digest.
        await self.request(
            "PUT",
            location.copy_merge_params({"digest": blob.digest}),
            ok=(201,),
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.stats.blobs_uploaded += 1
        self.stats.bytes_uploaded += blob.size
        self._holders.setdefault(blob.digest, repo)

    async def push_manifest(self, repo: str, reference: str, manifest: Manifest) -> httpx.Response:
        response = await self.request(
            "PUT",
            f"v2/{repo}/manifests/{reference}",
            ok=(201,),
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        got = response.headers.get("docker-content-digest")
        if got is not None and got != manifest.digest:
            raise PushError(
                f"PUT {repo}:{reference}: registry says {got}, expected {manifest.digest}"
            )
        self.stats.manifests_pushed += 1
        return response

    async def _add_to_referrers_tag(self, repo: str, subject: str, referrer: Manifest) -> None:
        tag = referrers_tag(subject)
        current = await self.request(
            "GET", f"v2/{repo}/manifests/{tag}", ok=(200, 404), headers={"Accept": OCI_INDEX}
        )
        entries: list[dict[str, Any]] = []
        if current.status_code == 200:
            entries = list(current.json().get("manifests", []))
        if any(entry.get("digest") == referrer.digest for entry in entries):
            return
        entry = referrer.descriptor()
        entries.append(entry)
        data = compact_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        index = Manifest(sha256_digest(data), OCI_INDEX, data)
        await self.push_manifest(repo, tag, index)
        self.stats.fallback_tags += 1

    async def push_image(self, corpus: Corpus, image: Image) -> None:
        for digest in image.blobs:
            await self.push_blob(image.repo, corpus.blobs[digest])
        for digest in image.manifests[:-1]:
            await self.push_manifest(image.repo, digest, corpus.manifests[digest])
        await self.push_manifest(image.repo, image.tag, corpus.manifests[image.digest])
        for digest in image.referrers:
            referrer = corpus.manifests[digest]
            response = await self.push_manifest(image.repo, digest, referrer)
            # OCI 1.1: a registry with the referrers API answers with OCI-Subject; else the client
            # maintains the `sha256-<hex>` index itself.
            has_api = "oci-subject" in response.headers
            self.stats.referrers_api = has_api
            if not has_api:
                await self._add_to_referrers_tag(image.repo, image.digest, referrer)

    async def push(self, corpus: Corpus, *, concurrency: int = 4) -> PushStats:
        limiter = trio.CapacityLimiter(concurrency)
        by_repo: dict[str, list[Image]] = {}
        for image in corpus.images:
            by_repo.setdefault(image.repo, []).append(image)

        async def push_repo(images: list[Image]) -> None:
            # Tags of one repository go in order: the referrers tag is read-modify-write.
            for image in images:
                async with limiter:
                    await self.push_image(corpus, image)

        # The first image goes alone so later repos can mount its shared base layers.
        first = corpus.images[0]
        await self.push_image(corpus, first)
        async with trio.open_nursery() as nursery:
            for images in by_repo.values():
                rest = [image for image in images if image is not first]
                if rest:
                    nursery.start_soon(push_repo, rest)
        return self.stats


async def push_corpus(
    corpus: Corpus,
    base_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 4,
    mount: bool = True,
) -> PushStats:
    """Push every blob, manifest, tag and referrer of `corpus` to the registry at `base_url`."""
    if client is not None:
        return await CorpusPusher(client, base_url, mount=mount).push(
            corpus, concurrency=concurrency
        )
    async with make_client(username, password) as own:
        return await CorpusPusher(own, base_url, mount=mount).push(corpus, concurrency=concurrency)


async def seed_registry(
    base_url: str,
    spec: CorpusSpec | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    concurrency: int = 4,
) -> Corpus:
    """Plan the corpus for `spec` and push it; returns the plan (repo -> tag -> digest, blobs)."""
    corpus = build_corpus(spec or CorpusSpec())
    await push_corpus(
        corpus, base_url, username=username, password=password, concurrency=concurrency
    )
    return corpus
