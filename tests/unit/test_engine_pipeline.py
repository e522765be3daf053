"""The sync pipeline against in-memory registries (no sockets), under trio's MockClock.

FakeRegistry implements the engine's SourceEndpoint and TargetEndpoint protocols with the
behaviours that matter to the plan: mount scope, honest self-mount probes, referrers API or
not, latency. It counts calls by request kind so the tests assert on wire-level work.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ocync.engine.cache import TransferCache
from ocync.engine.discovery import ArtifactPolicy, MappingSpec, TargetRepo
from ocync.engine.endpoints import SourceEndpoint
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.plan import MountScope
from ocync.engine.report import ImageStatus
from ocync.engine.staging import BlobStage
from ocync.errors import NotFound, OCIErrorEntry, RegistryError, TransportError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor, Manifest, parse_manifest
from ocync.oci.platform import Platform
from ocync.oci.tagfilter import TagFilter
from ocync.registry.client import MountResult, UploadSession


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    def __init__(
        self,
        name: str,
        *,
        scope: MountScope = MountScope.ANY,
        probe_ok: bool = True,
        referrers: bool | None = True,
        latency: float = 0.01,
    ) -> None:
        self.name = name
        self.host = f"{name}.example"
        self.mount_scope = scope
        self.mount_probe_ok = probe_ok
        self.referrers_api = referrers
        self.latency = latency
        self.blobs: dict[str, bytes] = {}
        self.links: dict[str, set[str]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.calls: Counter[str] = Counter()
        self.blob_gets: Counter[str] = Counter()
        self.fail_blob_get: set[str] = set()
        self.fail_puts: int = 0

    # -- test helpers --
    def add_blob(self, repo: str, data: bytes) -> Descriptor:
        d = _digest(data)
        self.blobs[d] = data
        self.links.setdefault(repo, set()).add(d)
        return Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(d), len(data))

    def add_manifest(self, repo: str, raw: bytes, media_type: str, tag: str | None = None) -> str:
        d = _digest(raw)
        self.manifests.setdefault(repo, {})[d] = (raw, media_type)
        if tag:
            self.tags.setdefault(repo, {})[tag] = d
        return d

    def holds_tag(self, repo: str, tag: str) -> bytes | None:
        d = self.tags.get(repo, {}).get(tag)
        return None if d is None else self.manifests[repo][d][0]

    async def _req(self, kind: str) -> None:
        self.calls[kind] += 1
        await trio.sleep(self.latency)

    # -- Endpoint --
    def request_counts(self) -> Mapping[str, int]:
        return dict(self.calls)

    def throttled_count(self) -> int:
        return 0

    def statistics(self) -> Mapping[str, Any]:
        return {}

    # -- Source --
    async def list_tags(self, repo: str) -> list[str]:
        await self._req("tags_list")
        if repo not in self.tags:
            raise NotFound(f"repository {repo} not found", status=404)
        return sorted(self.tags[repo])

    def _resolve(self, repo: str, ref: str) -> str | None:
        if ref.startswith("sha256:"):
            return ref if ref in self.manifests.get(repo, {}) else None
        return self.tags.get(repo, {}).get(ref)

    async def head_manifest(self, repo: str, ref: str) -> str | None:
        await self._req("manifest_head")
        return self._resolve(repo, ref)

    async def get_manifest(self, repo: str, ref: str) -> Manifest:
        await self._req("manifest_get")
        d = self._resolve(repo, ref)
        if d is None:
            raise NotFound(f"manifest {repo}:{ref} not found", status=404)
        raw, media_type = self.manifests[repo][d]
        return parse_manifest(raw, media_type)

    async def list_referrers(self, repo: str, digest: str) -> list[Descriptor] | None:
        await self._req("referrers")
        if not self.referrers_api:
            return None
        out = []
        for raw, media_type in self.manifests.get(repo, {}).values():
            m = parse_manifest(raw, media_type)
            if m.subject is not None and str(m.subject.digest) == digest:
                out.append(Descriptor(media_type, m.digest, len(raw), artifact_type=m.artifact_type))
        return out

    async def download_blob(self, repo: str, desc: Descriptor, path: Path) -> None:
        await self._req("blob_get")
        self.blob_gets[str(desc.digest)] += 1
        await trio.Path(path).write_bytes(self.blobs[str(desc.digest)])

    # -- Target --
    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        await self._req("manifest_put")
        if self.fail_puts:
            self.fail_puts -= 1
            raise RegistryError("boom", status=500, method="PUT")
        m = parse_manifest(manifest.raw, manifest.media_type)
        for b in m.blobs():
            if str(b.digest) not in self.links.get(repo, set()):
                raise RegistryError(
                    "blob unknown", status=400, method="PUT",
                    errors=[OCIErrorEntry("MANIFEST_BLOB_UNKNOWN")],
                )
        for c in m.manifests:
            assert str(c.digest) in self.manifests.get(repo, {}), "child pushed after parent"
        self.add_manifest(repo, manifest.raw, manifest.media_type, None if ref.startswith("sha256:") else ref)

    def want_push(self, repo: str) -> None:
        pass

    async def repository_exists(self, repo: str) -> bool:
        await self._req("tags_list")
        return repo in self.tags or repo in self.links

    async def head_blob(self, repo: str, desc: Descriptor) -> bool:
        await self._req("blob_head")
        return str(desc.digest) in self.links.get(repo, set())

    async def mount_blob(self, repo: str, desc: Descriptor, from_repo: str) -> MountResult:
        await self._req("mount")
        d = str(desc.digest)
        ok = d in self.links.get(from_repo, set())
        if from_repo != repo and self.mount_scope is MountScope.NAMESPACE:
            ok = ok and from_repo.split("/")[0] == repo.split("/")[0]
        if from_repo == repo and not self.mount_probe_ok:
            ok = False
        if ok:
            self.links.setdefault(repo, set()).add(d)
            return MountResult(True)
        return MountResult(False, session=UploadSession(repo, "memory://upload"))

    async def copy_blob(
        self, source: SourceEndpoint, source_repo: str, repo: str, desc: Descriptor, session: UploadSession | None
    ) -> None:
        assert isinstance(source, FakeRegistry)
        await source._req("blob_get")
        d = str(desc.digest)
        if d in source.fail_blob_get:
            raise TransportError(f"connection reset while reading blob {d[:19]}")
        source.blob_gets[d] += 1
        if session is None:
            await self._req("upload_post")
        await self._req("upload_put")
        self.blobs[d] = source.blobs[d]
        self.links.setdefault(repo, set()).add(d)

    async def upload_file(self, repo: str, desc: Descriptor, path: Path, session: UploadSession | None) -> None:
        if session is None:
            await self._req("upload_post")
        await self._req("upload_put")
        data = await trio.Path(path).read_bytes()
        assert _digest(data) == str(desc.digest)
        self.blobs[str(desc.digest)] = data
        self.links.setdefault(repo, set()).add(str(desc.digest))


def image(reg: FakeRegistry, repo: str, tag: str, layers: list[bytes], arch: str = "amd64") -> str:
    cfg = reg.add_blob(repo, json.dumps({"architecture": arch, "os": "linux", "tag": tag}).encode())
    descs = [reg.add_blob(repo, data) for data in layers]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": str(cfg.digest), "size": cfg.size},
        "layers": [d.to_json() for d in descs],
    }
    return reg.add_manifest(repo, json.dumps(doc).encode(), mt.OCI_MANIFEST, tag)


def multiarch(reg: FakeRegistry, repo: str, tag: str, base: bytes) -> str:
    entries = []
    for arch in ("amd64", "arm64"):
        d = image(reg, repo, f"{tag}-{arch}-tmp", [base, f"{arch}-{tag}".encode()], arch)
        raw, _ = reg.manifests[repo][d]
        del reg.tags[repo][f"{tag}-{arch}-tmp"]
        entries.append(
            {"mediaType": mt.OCI_MANIFEST, "digest": d, "size": len(raw),
             "platform": {"os": "linux", "architecture": arch}}
        )
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return reg.add_manifest(repo, json.dumps(doc).encode(), mt.OCI_INDEX, tag)


def signature(reg: FakeRegistry, repo: str, subject: str, kind: str = "application/vnd.dev.cosign") -> str:
    blob = reg.add_blob(repo, f"sig of {subject}".encode())
    empty = reg.add_blob(repo, b"{}")
    raw, media_type = reg.manifests[repo][subject]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": kind,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": str(empty.digest), "size": 2},
        "layers": [blob.to_json()],
        "subject": {"mediaType": media_type, "digest": subject, "size": len(raw)},
    }
    return reg.add_manifest(repo, json.dumps(doc).encode(), mt.OCI_MANIFEST)


def mapping(name: str, src_repo: str, targets: list[tuple[str, str]], **kw: Any) -> MappingSpec:
    return MappingSpec(
        name=name, source="src", source_repo=src_repo,
        targets=tuple(TargetRepo(r, p) for r, p in targets), **kw,
    )


async def run(mappings: list[MappingSpec], src: FakeRegistry, *targets: FakeRegistry,
              cache: TransferCache | None = None, stage: BlobStage | None = None, **opts: Any) -> SyncEngine:
    eng = SyncEngine(
        mappings, {"src": src}, {t.name: t for t in targets}, cache or TransferCache(),
        EngineOptions(**opts), stage=stage,
    )
    await eng.run()
    return eng


BASE = b"base-layer" * 100


async def test_cold_then_warm_dedup_and_mount(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    for repo in ("lib/a", "lib/b", "lib/c"):
        for t in ("1", "2"):
            image(src, repo, t, [BASE, f"{repo}-{t}".encode()])
    dst = FakeRegistry("dst", scope=MountScope.NAMESPACE, probe_ok=False, referrers=False)
    maps = [mapping(f"m{r}", f"lib/{r}", [("dst", f"org/{r}")]) for r in "abc"]
    cache = TransferCache()
    eng = await run(maps, src, dst, cache=cache)
    rep = eng.report
    assert rep.count(ImageStatus.SYNCED) == 6, rep.describe()
    for r in "abc":
        for t in ("1", "2"):
            assert dst.holds_tag(f"org/{r}", t) == src.holds_tag(f"lib/{r}", t)
    # every source blob pulled exactly once, the shared base mounted into the other repos
    assert max(src.blob_gets.values()) == 1
    assert sum(src.blob_gets.values()) == len(set(src.blobs))
    assert rep.blobs_mounted >= 2
    # ghcr-like (no honest self-mount probe): the target repositories did not exist, so one
    # tag-list request each replaces a HEAD per blob
    assert dst.calls["blob_head"] == 0 and dst.calls["tags_list"] == 3
    # warm: nothing moves, <= 2 requests per tag per target
    src.calls.clear()
    dst.calls.clear()
    eng2 = await run(maps, src, dst, cache=cache)
    assert eng2.report.count(ImageStatus.SKIPPED) == 6
    assert eng2.report.blobs_transferred == 0
    # artifacts.refresh: cached (the default): the cache vouches for every tag, so no
    # referrers listing either (refresh: always would add one per tag at the source)
    assert src.calls["referrers"] == 0 and dst.calls["referrers"] == 0
    per_tag = (
        sum(src.calls.values()) + sum(dst.calls.values())
        - src.calls["tags_list"] - src.calls["referrers"]
    ) / 6
    assert per_tag <= 2
    assert eng2.report.exit_code() == 0


async def test_self_probe_used_where_honoured(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    dst = FakeRegistry("dst", probe_ok=True)
    dst.add_blob("lib/a", BASE)  # already there
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst)
    assert eng.report.count(ImageStatus.SYNCED) == 1
    assert dst.calls["blob_head"] == 0
    assert dst.calls["mount"] == 2  # config + base, each one probe
    assert eng.report.blobs_skipped == 1 and eng.report.blobs_transferred == 1


async def test_multi_target_pulls_once_via_staging(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    src = FakeRegistry("src")
    multiarch(src, "lib/a", "1", BASE)
    t1, t2 = FakeRegistry("t1"), FakeRegistry("t2")
    stage = BlobStage(tmp_path / "staging", size_limit=None)
    eng = await run([mapping("m", "lib/a", [("t1", "lib/a"), ("t2", "mirror/a")])], src, t1, t2, stage=stage)
    assert eng.report.count(ImageStatus.SYNCED) == 2, eng.report.describe()
    assert max(src.blob_gets.values()) == 1
    assert t1.holds_tag("lib/a", "1") == t2.holds_tag("mirror/a", "1") == src.holds_tag("lib/a", "1")
    assert stage.statistics().reuses > 0
    stage.cleanup()
    assert not any(p.is_file() for p in (tmp_path / "staging").rglob("*"))


async def test_platform_filter_trims_index(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    multiarch(src, "lib/a", "1", BASE)
    dst = FakeRegistry("dst")
    m = mapping("m", "lib/a", [("dst", "lib/a")], platforms=(Platform("linux", "arm64"),))
    eng = await run([m], src, dst)
    assert eng.report.count(ImageStatus.SYNCED) == 1
    pushed = json.loads(dst.holds_tag("lib/a", "1") or b"{}")
    assert [e["platform"]["architecture"] for e in pushed["manifests"]] == ["arm64"]
    # second run: the trimmed digest is what the target has -> skipped, after one index GET
    src.calls.clear()
    eng2 = await run([m], src, dst)
    assert eng2.report.count(ImageStatus.SKIPPED) == 1
    assert src.calls["manifest_get"] == 1  # the index only, no child manifests


@pytest.mark.parametrize("referrers_api", [True, False], ids=["api", "tag-fallback"])
async def test_referrers_follow_subject(autojump_clock: trio.testing.MockClock, referrers_api: bool) -> None:
    src = FakeRegistry("src", referrers=referrers_api)
    subject = image(src, "lib/a", "1", [BASE])
    sig = signature(src, "lib/a", subject)
    signature(src, "lib/a", subject, kind="application/spdx+json")
    if not referrers_api:
        raw, media_type = src.manifests["lib/a"][sig]
        idx = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
               "manifests": [{"mediaType": media_type, "digest": sig, "size": len(raw),
                              "artifactType": "application/vnd.dev.cosign"}]}
        src.add_manifest("lib/a", json.dumps(idx).encode(), mt.OCI_INDEX, "sha256-" + subject[7:])
    dst = FakeRegistry("dst", referrers=False)
    m = mapping("m", "lib/a", [("dst", "lib/a")], tag_filter=TagFilter(glob=("1",)),
                artifacts=ArtifactPolicy(exclude=("application/spdx*",)))
    eng = await run([m], src, dst)
    assert eng.report.count(ImageStatus.SYNCED) == 1, eng.report.describe()
    assert sig in dst.manifests["lib/a"]
    fallback = json.loads(dst.holds_tag("lib/a", "sha256-" + subject[7:]) or b"{}")
    assert [e["digest"] for e in fallback["manifests"]] == [sig]
    assert eng.report.results[0].referrers == 1


async def test_require_artifacts_fails_image(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    image(src, "lib/a", "2", [BASE, b"x"])
    signature(src, "lib/a", src.tags["lib/a"]["2"])
    dst = FakeRegistry("dst")
    m = mapping("m", "lib/a", [("dst", "lib/a")], artifacts=ArtifactPolicy(require_artifacts=True))
    eng = await run([m], src, dst)
    by_tag = {r.source: r.status for r in eng.report.results}
    assert by_tag == {"src/lib/a:1": ImageStatus.FAILED, "src/lib/a:2": ImageStatus.SYNCED}
    assert dst.holds_tag("lib/a", "1") is None  # failed before anything was written
    assert "require_artifacts" in eng.report.describe()
    assert eng.report.exit_code() == 1


async def test_one_failure_does_not_stop_others(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "good", [BASE])
    image(src, "lib/a", "bad", [b"poisoned"])
    src.fail_blob_get.add(_digest(b"poisoned"))
    dst = FakeRegistry("dst")
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst)
    statuses = {r.source: r.status for r in eng.report.results}
    assert statuses == {"src/lib/a:good": ImageStatus.SYNCED, "src/lib/a:bad": ImageStatus.FAILED}
    assert dst.holds_tag("lib/a", "bad") is None  # never a tag pointing at missing content
    assert "connection reset" in eng.report.describe()
    assert eng.report.exit_code() == 1


async def test_stale_cache_is_invalidated(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    dst = FakeRegistry("dst")
    cache = TransferCache()
    for d in src.blobs:
        cache.record_blob(dst.host, "lib/a", d)  # lies: the target has nothing
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst, cache=cache)
    assert eng.report.count(ImageStatus.SYNCED) == 1, eng.report.describe()
    assert dst.holds_tag("lib/a", "1") == src.holds_tag("lib/a", "1")
    assert cache.statistics().invalidations >= 1


async def test_missing_repo_and_min_tags_are_errors(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    dst = FakeRegistry("dst")
    maps = [
        mapping("gone", "lib/none", [("dst", "x/none")]),
        mapping("few", "lib/a", [("dst", "x/a")], tag_filter=TagFilter(min_tags=3)),
    ]
    eng = await run(maps, src, dst)
    assert len(eng.report.errors) == 2
    assert eng.report.exit_code() == 2


async def test_dry_run_writes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1.0", [BASE])
    image(src, "lib/a", "2.0-rc1", [BASE])
    dst = FakeRegistry("dst")
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst, dry_run=True)
    assert not dst.manifests and not dst.blobs
    plan = eng.report.to_dict()["plan"]["mappings"][0]
    assert [w["tag"] for w in plan["would_copy"]] == ["1.0"]
    assert any(s["name"] == "exclude (soft)" and s["dropped"] == 1 for s in plan["stages"])


async def test_interrupt_drains_and_reports_undone(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src", latency=1.0)
    for i in range(12):
        image(src, "lib/a", f"t{i}", [f"layer{i}".encode()])
    dst = FakeRegistry("dst", latency=1.0)
    eng = SyncEngine([mapping("m", "lib/a", [("dst", "lib/a")])], {"src": src}, {"dst": dst},
                     TransferCache(), EngineOptions(max_concurrent_transfers=2, drain_timeout=3.0))

    async def stop_soon() -> None:
        await trio.sleep(6.0)
        eng.request_stop()

    async with trio.open_nursery() as n:
        n.start_soon(stop_soon)
        await eng.run()
    rep = eng.report
    assert rep.interrupted
    assert rep.count(ImageStatus.SYNCED) < 12
    assert rep.exit_code() == 1
    # whatever was pushed is complete: every tag at the target references present blobs
    for tag, d in dst.tags.get("lib/a", {}).items():
        m = parse_manifest(*dst.manifests["lib/a"][d])
        assert all(str(b.digest) in dst.links["lib/a"] for b in m.blobs()), tag


async def test_cross_namespace_shared_blob_pulled_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """GHCR mounts only inside a namespace: a base layer needed by two orgs is uploaded into
    each, yet pulled from the source once (staged)."""
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE, b"a"])
    image(src, "lib/b", "1", [BASE, b"b"])
    dst = FakeRegistry("dst", scope=MountScope.NAMESPACE, probe_ok=False, referrers=False)
    maps = [
        mapping("a", "lib/a", [("dst", "org1/a")]),
        mapping("b", "lib/b", [("dst", "org2/b")]),
    ]
    stage = BlobStage(tmp_path / "stage", size_limit=None)
    eng = await run(maps, src, dst, stage=stage)
    assert eng.report.count(ImageStatus.SYNCED) == 2, eng.report.describe()
    assert src.blob_gets[_digest(BASE)] == 1
    assert {"org1/a", "org2/b"} <= {r for r, links in dst.links.items() if _digest(BASE) in links}
    assert dst.calls["mount"] == 0  # a cross-namespace mount cannot succeed: never tried
    assert eng.statistics()["duplicate_blob_pulls"] == 0


async def test_immutable_tags_cost_no_request_once_known(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1.0", [BASE])
    image(src, "lib/a", "latest", [BASE, b"l"])
    dst = FakeRegistry("dst")
    m = mapping("m", "lib/a", [("dst", "lib/a")], tag_filter=TagFilter(immutable_tags="[0-9]*"))
    cache = TransferCache()
    await run([m], src, dst, cache=cache)
    src.calls.clear()
    dst.calls.clear()
    eng = await run([m], src, dst, cache=cache)
    reasons = {r.source: r.reason for r in eng.report.results}
    assert reasons == {"src/lib/a:1.0": "immutable tag present", "src/lib/a:latest": "unchanged"}
    # one tag list + one source HEAD for the mutable tag; nothing for the immutable one. The
    # target is not asked: the cache stamped the mutable tag as pushed from the same source
    # digest (within cache_ttl), and artifacts.refresh: cached lists no referrers for it.
    assert dict(src.calls) == {"tags_list": 1, "manifest_head": 1}
    assert dict(dst.calls) == {}


@pytest.mark.parametrize(("head_first", "heads", "gets"), [(True, 1, 1), (False, 0, 2)])
async def test_head_first_honoured(
    autojump_clock: trio.testing.MockClock, head_first: bool, heads: int, gets: int
) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    image(src, "lib/a", "2", [BASE, b"2"])
    dst = FakeRegistry("dst")
    image(dst, "lib/a", "1", [BASE])  # tag 1 already there
    m = mapping("m", "lib/a", [("dst", "lib/a")], head_first=head_first)
    eng = await run([m], src, dst)
    assert eng.report.count(ImageStatus.SKIPPED) == 1 and eng.report.count(ImageStatus.SYNCED) == 1
    # HEAD first: a HEAD for the tag the target has (to compare), a GET for the one it lacks
    # (no HEAD: the GET is needed anyway); without HEAD first, a GET per tag
    assert src.calls["manifest_head"] == heads
    assert src.calls["manifest_get"] == gets


async def test_existing_repository_gets_head_first(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE, b"new"])
    dst = FakeRegistry("dst", scope=MountScope.NAMESPACE, probe_ok=False, referrers=False)
    dst.add_blob("org/a", BASE)  # the repository exists and already holds the base layer
    eng = await run([mapping("m", "lib/a", [("dst", "org/a")])], src, dst)
    assert eng.report.count(ImageStatus.SYNCED) == 1
    assert dst.calls["blob_head"] == 3  # config, base, new
    assert eng.report.blobs_skipped == 1 and eng.report.blobs_transferred == 2
    assert src.blob_gets[_digest(BASE)] == 0


async def test_platform_missing_warns_and_no_match_fails(autojump_clock: trio.testing.MockClock) -> None:
    src = FakeRegistry("src")
    multiarch(src, "lib/a", "1", BASE)
    dst = FakeRegistry("dst")
    some = mapping("m", "lib/a", [("dst", "x/a")],
                   platforms=(Platform("linux", "arm64"), Platform("linux", "s390x")))
    none = mapping("n", "lib/a", [("dst", "y/a")], platforms=(Platform("linux", "s390x"),))
    eng = await run([some, none], src, dst)
    by_target = {r.target: r for r in eng.report.results}
    assert by_target["dst/x/a:1"].status is ImageStatus.SYNCED
    assert any("src/lib/a:1" in w and "linux/s390x" in w for w in eng.report.warnings)
    failed = by_target["dst/y/a:1"]
    assert failed.status is ImageStatus.FAILED
    assert "linux/amd64" in failed.reason and "linux/arm64" in failed.reason
    assert eng.report.exit_code() == 1


@pytest.mark.parametrize("caught_by", ["verify_targets", "stamp_expired"])
async def test_tag_deleted_at_target_is_restored_despite_cache(
    autojump_clock: trio.testing.MockClock, caught_by: str
) -> None:
    """A tag deleted at the target behind ocync's back: while the cache's stamp is fresh the
    warm run trusts it (no target HEAD); ``verify: always`` / ``--verify-targets``, or the
    stamp outliving cache_ttl, brings the HEAD back and the tag is restored."""
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    dst = FakeRegistry("dst")
    m = mapping("m", "lib/a", [("dst", "lib/a")])
    cache = TransferCache()
    wall = [1_000_000.0]
    cache.clock = lambda: wall[0]
    cache.tag_ttl = 3600.0
    await run([m], src, dst, cache=cache)
    del dst.tags["lib/a"]["1"]  # someone deleted the tag at the target
    dst.calls.clear()
    wall[0] += 3599.0
    eng = await run([m], src, dst, cache=cache)
    assert eng.report.count(ImageStatus.SKIPPED) == 1 and "manifest_head" not in dst.calls
    assert not dst.holds_tag("lib/a", "1")  # the documented trade-off of verify: cached
    if caught_by == "verify_targets":
        m = mapping("m", "lib/a", [("dst", "lib/a")], verify_targets=frozenset({"dst"}))
    else:
        wall[0] += 2.0  # the stamp is now older than cache_ttl
    eng = await run([m], src, dst, cache=cache)
    assert eng.report.count(ImageStatus.SYNCED) == 1
    assert dst.holds_tag("lib/a", "1") == src.holds_tag("lib/a", "1")
    assert eng.report.blobs_transferred == 0  # the blobs are still there: cache hits


async def test_refresh_copies_late_referrer_and_reports_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """artifacts.refresh: always -- a signature pushed after the image was mirrored reaches
    the target on the next (warm) run; a failing listing is a one-line failure per target."""
    src = FakeRegistry("src")
    subject = image(src, "lib/a", "1", [BASE])
    image(src, "lib/a", "2", [BASE, b"two"])
    dst = FakeRegistry("dst")
    m = mapping("m", "lib/a", [("dst", "lib/a")], artifacts=ArtifactPolicy(refresh="always"))
    cache = TransferCache()
    await run([m], src, dst, cache=cache)
    sig = signature(src, "lib/a", subject)
    eng = await run([m], src, dst, cache=cache)
    assert sig in dst.manifests["lib/a"], eng.report.describe()
    [done] = [r for r in eng.report.results if r.referrers]
    assert done.status is ImageStatus.SYNCED and done.source == "src/lib/a:1"
    assert eng.report.count(ImageStatus.SKIPPED) == 1
    # a third run asks the target nothing: not about the referrer (the cache knows it), not
    # about the tags (the cache's stamps vouch for them)
    dst.calls.clear()
    await run([m], src, dst, cache=cache)
    assert dict(dst.calls) == {}

    async def broken(repo: str, digest: str) -> list[Descriptor] | None:
        raise TransportError("connection reset listing referrers")

    src.list_referrers = broken  # type: ignore[method-assign]
    eng = await run([m], src, dst, cache=cache)
    failed = [r for r in eng.report.results if r.status is ImageStatus.FAILED]
    assert len(failed) == 2 and all(r.reason.startswith("referrers: ") for r in failed)
    assert eng.report.exit_code() == 2


@pytest.mark.parametrize(
    ("stop_at", "detail"),
    [
        # tag lists take 1 s (latency): nothing listed yet, each mapping is one undone unit
        pytest.param(0.5, {"mappings_not_listed": 2}, id="while-listing"),
        # listed (3 tags each), manifests being compared: every selected tag is undone
        pytest.param(1.5, {"tags_not_examined": 6}, id="while-examining-tags"),
    ],
)
async def test_interrupt_before_discovery_finished_counts_undiscovered_work(
    autojump_clock: trio.testing.MockClock, stop_at: float, detail: dict[str, int]
) -> None:
    src = FakeRegistry("src", latency=1.0)
    for repo in ("lib/a", "lib/b"):
        for t in ("1", "2", "3"):
            image(src, repo, t, [f"{repo}-{t}".encode()])
    dst = FakeRegistry("dst", latency=1.0)
    maps = [mapping(f"m{r}", f"lib/{r}", [("dst", f"lib/{r}")]) for r in "ab"]
    eng = SyncEngine(maps, {"src": src}, {"dst": dst}, TransferCache(), EngineOptions(drain_timeout=3.0))

    async def stop_soon() -> None:
        await trio.sleep(stop_at)
        eng.request_stop()

    async with trio.open_nursery() as n:
        n.start_soon(stop_soon)
        await eng.run()
    rep = eng.report
    assert rep.results == [] and not dst.tags
    assert {k: v for k, v in rep.undone_detail.items() if v} == detail
    assert rep.undone == sum(detail.values())
    assert rep.exit_code() == 1
    assert f"interrupted, {rep.undone} left undone" in rep.summary_line()
    assert rep.to_dict()["summary"]["undone"] == rep.undone


async def test_interrupt_after_everything_finished_leaves_nothing_undone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    src = FakeRegistry("src")
    image(src, "lib/a", "1", [BASE])
    dst = FakeRegistry("dst")
    eng = await run([mapping("m", "lib/a", [("dst", "lib/a")])], src, dst)
    eng.request_stop()  # too late to matter: the run is complete
    assert eng.report.undone == 0 and eng.report.count(ImageStatus.SYNCED) == 1
    assert eng.report.exit_code() == 0


class SlowReferrerPuts(FakeRegistry):
    """A target whose manifest PUTs by digest (the referrers here) take 100 s."""

    async def put_manifest(self, repo: str, ref: str, manifest: Manifest) -> None:
        if ref.startswith("sha256:"):
            await trio.sleep(100)
        await super().put_manifest(repo, ref, manifest)


async def test_drain_deadline_reports_tags_pushed_without_their_referrers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cut off after their tags were pushed, while the referrers were still being copied: each
    image is reported as what it is (tag pushed, referrers not copied), with its blobs."""
    src = FakeRegistry("src")
    for t in ("1", "2", "3"):
        signature(src, "lib/a", image(src, "lib/a", t, [f"layer-{t}".encode()]))
    dst = SlowReferrerPuts("dst")
    eng = SyncEngine([mapping("m", "lib/a", [("dst", "lib/a")])], {"src": src}, {"dst": dst},
                     TransferCache(), EngineOptions(drain_timeout=3.0))

    async def stop_soon() -> None:
        await trio.sleep(10)  # every tag is pushed by now; the referrer PUTs take 100 s
        assert sorted(dst.tags["lib/a"]) == ["1", "2", "3"]
        eng.request_stop()

    async with trio.open_nursery() as n:
        n.start_soon(stop_soon)
        await eng.run()
    rep = eng.report
    assert [r.status for r in rep.results] == [ImageStatus.INTERRUPTED] * 3, rep.describe()
    assert {r.target for r in rep.results} == {f"dst/lib/a:{t}" for t in ("1", "2", "3")}
    assert {r.reason for r in rep.results} == {"interrupted: tag pushed, 1 referrer(s) not copied"}
    # every blob that reached the target is counted: the images' and the referrers'
    assert rep.blobs_transferred == dst.calls["upload_put"] == len(dst.blobs)
    assert rep.undone == 3 and rep.undone_detail["images_interrupted"] == 3
    assert rep.exit_code() == 1
    text = rep.render_text()
    assert text.count("interrupted: tag pushed, 1 referrer(s) not copied") == 3, text
    assert "3 image(s) cut off in flight" in text
    assert [i["status"] for i in rep.to_dict()["images"]] == ["interrupted"] * 3


async def test_refresh_cached_copies_a_late_referrer_when_the_tag_is_next_verified(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """artifacts.refresh: cached (the default) -- while the cache vouches for a tag a warm run
    lists no referrers; once its stamp is older than cache_ttl the tag is verified at the
    target and a signature pushed meanwhile is copied in that run."""
    src = FakeRegistry("src")
    subject = image(src, "lib/a", "1", [BASE])
    dst = FakeRegistry("dst")
    m = mapping("m", "lib/a", [("dst", "lib/a")])
    now = [1_000_000.0]
    cache = TransferCache()
    cache.clock = lambda: now[0]
    cache.tag_ttl = 3600.0
    await run([m], src, dst, cache=cache)
    sig = signature(src, "lib/a", subject)
    src.calls.clear()
    eng = await run([m], src, dst, cache=cache)
    assert sig not in dst.manifests["lib/a"] and "referrers" not in src.calls, eng.report.describe()
    now[0] += 3601.0  # the stamp expires: the next run HEADs the target tag, then lists
    src.calls.clear()
    eng = await run([m], src, dst, cache=cache)
    assert sig in dst.manifests["lib/a"], eng.report.describe()
    assert src.calls["referrers"] == 1 and dst.calls["manifest_head"] >= 1  # the tag verified
    [done] = [r for r in eng.report.results if r.referrers]
    assert done.status is ImageStatus.SYNCED and done.source == "src/lib/a:1"
