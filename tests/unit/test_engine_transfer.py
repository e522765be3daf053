"""The blob and manifest push paths of one transfer against in-memory registries (no sockets),
under trio's MockClock: what the engine asks a target when its transfer cache turns out stale.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio
import trio.testing

from ocync.engine.cache import TransferCache
from ocync.engine.endpoints import SourceEndpoint
from ocync.engine.report import ImageStatus
from ocync.errors import OCIErrorEntry, RegistryError
from ocync.oci.manifest import Descriptor, Manifest, parse_manifest
from ocync.registry.client import MountResult, UploadSession
from tests.unit.test_engine_pipeline import BASE, FakeRegistry, _digest, image, mapping, run


class RewritingLinksRegistry(FakeRegistry):
    """distribution 2.8 with its filesystem driver: placing a blob into a repository writes the
    repository's link to it in place (truncate, then write), even when the link is there
    already. A manifest PUT verifying that blob meanwhile reads an empty link and answers 400
    DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN (observed with docker-registry 2.8.2)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, probe_ok=True)
        self.rewriting: Counter[tuple[str, str]] = Counter()
        self.rewrites: Counter[tuple[str, str]] = Counter()  # placements of a held blob

    async def _write_link(self, repo: str, digest: str) -> None:
        if digest in self.links.get(repo, set()):
            self.rewrites[(repo, digest)] += 1
            self.rewriting[(repo, digest)] += 1
            try:
                await trio.sleep(self.latency)
            finally:
                self.rewriting[(repo, digest)] -= 1

    async def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> MountResult:
        d = str(desc.digest)
        if d in self.links.get(from_repo, set()):
            self.calls["mount"] += 1
            await self._write_link(repo, d)
            self.links.setdefault(repo, set()).add(d)
            return MountResult(True)
        return await super().mount_blob(repo, desc, from_repo)

    async def copy_blob(
        self, source: SourceEndpoint, source_repo: str, repo: str, desc: Descriptor, session: UploadSession | None
    ) -> None:
        await self._write_link(repo, str(desc.digest))
        await super().copy_blob(source, source_repo, repo, desc, session)

    async def upload_file(self, repo: str, desc: Descriptor, path: Path, session: UploadSession | None) -> None:
        await self._write_link(repo, str(desc.digest))
        await super().upload_file(repo, desc, path, session)

    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        m = parse_manifest(manifest.raw, manifest.media_type)
        torn = [b for b in m.blobs() if self.rewriting[(repo, str(b.digest))]]
        if torn:
            self.calls["manifest_put"] += 1
            raise RegistryError(
                "provided digest did not match uploaded content", status=400, method="PUT",
                errors=[OCIErrorEntry("DIGEST_INVALID"), OCIErrorEntry("MANIFEST_BLOB_UNKNOWN")],
            )
        await super().put_manifest(repo, ref, manifest)


async def test_stale_cache_recheck_places_each_blob_once_per_repository(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The transfer cache says lib/a holds every blob; the target lost them all. Every image's
    first manifest PUT is refused and each rechecks its blobs, concurrently with the others
    sharing the base layer: a blob already placed again in this run must not be placed a
    second time (that is what tore the link under another image's retried manifest PUT)."""
    src = FakeRegistry("src")
    tags = [str(n) for n in range(6)]
    for tag in tags:
        image(src, "lib/a", tag, [BASE, f"own layer {tag}".encode()])
    dst = RewritingLinksRegistry("dst")
    cache = TransferCache()
    for d in src.blobs:
        cache.record_blob(dst.host, "lib/a", d)  # what the cache kept; the target has nothing
    cache.record_committed(dst.host, "lib/a")
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst, cache=cache,
                    max_concurrent_transfers=6)
    assert eng.report.count(ImageStatus.SYNCED) == len(tags), eng.report.describe()
    for tag in tags:
        assert dst.holds_tag("lib/a", tag) == src.holds_tag("lib/a", tag)
    assert cache.statistics().invalidations >= 1  # the recheck happened
    assert dict(dst.rewrites) == {}
    # each blob reached lib/a exactly once: the shared base layer was uploaded by one image
    # and every other image skipped it as placed in this run
    assert src.blob_gets[_digest(BASE)] == 1
    assert eng.ctx.actions["placed_skip"] >= len(tags) - 1


class RefusingManifestsRegistry(FakeRegistry):
    """A target that refuses the first ``refusals`` manifest PUTs with 400 MANIFEST_BLOB_UNKNOWN
    although every blob is there: what a manifest PUT meets when another writer is rewriting
    one of its blob links at that moment (docker-registry 2.8's in-place link write)."""

    def __init__(self, name: str, refusals: int) -> None:
        super().__init__(name, probe_ok=True)
        self.refusals = refusals
        self.refused = 0

    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        if self.refused < self.refusals:
            self.refused += 1
            self.calls["manifest_put"] += 1
            raise RegistryError(
                "blob unknown to registry", status=400, method="PUT",
                errors=[OCIErrorEntry("MANIFEST_BLOB_UNKNOWN")],
            )
        await super().put_manifest(repo, ref, manifest)


async def test_manifest_refused_for_a_confirmed_blob_is_sent_again_a_bounded_number_of_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the recheck every blob is confirmed in this run; a further refusal only resends
    the manifests (no blob request), up to STALE_CACHE_PUSHES pushes after the first."""
    from ocync.engine.blobplacement import STALE_CACHE_PUSHES

    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE, b"own layer"])
    dst = RefusingManifestsRegistry("dst", refusals=STALE_CACHE_PUSHES)
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst)
    assert eng.report.count(ImageStatus.SYNCED) == 1, eng.report.describe()
    assert dst.holds_tag("lib/a", "1") == src.holds_tag("lib/a", "1")
    assert dst.refused == STALE_CACHE_PUSHES
    assert src.blob_gets[_digest(BASE)] == 1  # resending manifests fetched nothing again

    always = RefusingManifestsRegistry("dst", refusals=10**6)
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, always)
    assert eng.report.count(ImageStatus.FAILED) == 1
    assert always.refused == STALE_CACHE_PUSHES + 1  # bounded: the first push and the retries
