"""``ocync sync`` with Debian's docker-registry (CNCF distribution 2.8) as source and as target.

The reference registry checks what the mock cannot vouch for: that distribution accepts the
engine's upload and mount flow (self-mount existence probes answered 201/202), that copies are
bit-for-bit, and that a warm run moves nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus, RunReport
from ocync.engine.runstate import RunState
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.conftest import distribution_process

pytestmark = pytest.mark.real_registry
TOKEN = "pat-alice"


async def sync(src_url: str, dst_url: str, maps: list[MappingSpec], cache: TransferCache,
               dst: ClientSettings, concurrency: int = 4,
               seen: list[RunState] | None = None) -> tuple[RunReport, dict[str, int]]:
    controllers = ControllerRegistry()
    anon = ClientSettings(auth=AuthSettings(kind="anonymous"))
    async with (
        RegistryClient(src_url, anon, controllers=controllers) as sc,
        RegistryClient(dst_url, dst, controllers=controllers) as dc,
    ):
        s, d = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
        await s.prepare()
        await d.prepare()
        engine = SyncEngine(maps, {"src": s}, {"dst": d}, cache,
                            EngineOptions(max_concurrent_transfers=concurrency))
        report = await engine.run()
        if seen is not None:
            seen.append(engine.ctx)
        return report, dict(dc.statistics().by_kind)


def maps_for(repos: list[str], prefix: str) -> list[MappingSpec]:
    return [
        MappingSpec(name=r, source="src", source_repo=r,
                    targets=(TargetRepo("dst", f"{prefix}/{r.split('/', 1)[1]}"),))
        for r in repos
    ]


async def test_distribution_as_source(distribution: Any) -> None:
    corpus = build_corpus(CorpusSpec(seed=21, repositories=2, tags_per_repo=2, shared_base_layers=1,
                                     referrers_per_image=1))
    await push_corpus(corpus, distribution.url)
    repos = sorted(corpus.repos)
    async with serve_mock(
        MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                    user_namespaces={"alice": ["mirror"]}, rate_limit="300/3s")
    ) as dst:
        settings = ClientSettings(auth=AuthSettings(kind="basic", username="alice", password=TOKEN),
                                  profile="ghcr", rate_limit="300/3s")
        cache = TransferCache()
        report, _ = await sync(distribution.url, dst.url, maps_for(repos, "mirror"), cache, settings)
        assert report.count(ImageStatus.FAILED) == 0, report.describe()
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in repos}
        assert await verify_corpus(corpus, dst.url, username="alice", password=TOKEN, repo_map=repo_map) == []
        assert dst.stats()["throttled"] == 0
        again, _ = await sync(distribution.url, dst.url, maps_for(repos, "mirror"), cache, settings)
        assert again.blobs_transferred == 0
        assert again.count(ImageStatus.SKIPPED) == len(corpus.images)


async def test_distribution_as_target(distribution: Any) -> None:
    corpus = build_corpus(CorpusSpec(seed=22, repositories=3, tags_per_repo=2, shared_base_layers=2,
                                     referrers_per_image=1))
    repos = sorted(corpus.repos)
    async with serve_mock(MockOptions(profile="generic")) as src:
        await push_corpus(corpus, src.url)
        src.reset_stats()
        settings = ClientSettings(auth=AuthSettings(kind="anonymous"))
        report, by_kind = await sync(src.url, distribution.url, maps_for(repos, "copy"), TransferCache(), settings)
        assert report.count(ImageStatus.FAILED) == 0, report.describe()
        repo_map = {r: f"copy/{r.split('/', 1)[1]}" for r in repos}
        assert await verify_corpus(corpus, distribution.url, repo_map=repo_map) == []
        assert src.stats()["by_kind"]["blob_get"] == len(corpus.blobs)  # each blob pulled once
        # distribution honours self-mount probes: no blob HEADs, shared layers mounted
        assert by_kind.get("blob_head", 0) == 0
        assert report.blobs_mounted >= (len(repos) - 1) * 2
        # 2 requests per blob uploaded (POST probe/mount session + streamed PUT)
        assert by_kind.get("upload_put", 0) == report.blobs_transferred
        # fresh cache, nothing changed: every tag skipped after one HEAD each side, plus
        # (artifacts.refresh: always) one HEAD per referrer the empty cache has not seen
        referrers = sum(len(i.referrers) for i in corpus.images)
        again, by_kind2 = await sync(src.url, distribution.url, maps_for(repos, "copy"), TransferCache(), settings)
        assert again.blobs_transferred == 0
        assert again.count(ImageStatus.SKIPPED) == len(corpus.images)
        assert by_kind2.get("manifest_head", 0) == len(corpus.images) + referrers


@pytest.mark.slow
async def test_stale_cache_recheck_after_storage_wipe_converges_every_run(tmp_path: Path) -> None:
    """The target loses its content (docker-registry restarted on an empty storage dir) while
    the transfer cache survives: every run must still converge in one go. Repeated 20 times,
    because the failure it guards against (a blob placed again in a repository while another
    image's manifest PUT there verifies it: distribution 2.8 then answers 400 "DIGEST_INVALID;
    MANIFEST_BLOB_UNKNOWN") hit about one run in five."""
    rounds = 20
    corpus = build_corpus(CorpusSpec(seed=23, repositories=2, tags_per_repo=8, shared_base_layers=2,
                                     referrers_per_image=1))
    repos = sorted(corpus.repos)
    repo_map = {r: f"copy/{r.split('/', 1)[1]}" for r in repos}
    settings = ClientSettings(auth=AuthSettings(kind="anonymous"))
    failures: list[str] = []
    with trio.fail_after(600):
        async with serve_mock(MockOptions(profile="generic")) as src:
            await push_corpus(corpus, src.url)
            registry = distribution_process(tmp_path / "storage-0").start()
            port = registry.port
            try:
                cache = TransferCache()
                report, _ = await sync(src.url, registry.url, maps_for(repos, "copy"), cache,
                                       settings, concurrency=8)
                assert report.count(ImageStatus.FAILED) == 0, report.describe()
                for n in range(1, rounds + 1):
                    # what cache_dir keeps between runs: the persisted payload
                    cache = TransferCache.from_payload(cache.to_payload())
                    registry.stop()
                    registry = distribution_process(tmp_path / f"storage-{n}", port=port).start()
                    contexts: list[RunState] = []
                    # a wiped target is an out-of-band change the cache's tag stamps cannot
                    # know of: the operator's --verify-targets HEADs every tag
                    maps = [replace(m, verify_targets=frozenset({"dst"}))
                            for m in maps_for(repos, "copy")]
                    report, _ = await sync(src.url, registry.url, maps, cache,
                                           settings, concurrency=8, seen=contexts)
                    # the stale cache was trusted first, then rechecked: the scenario happened
                    assert contexts[0].actions["cache_skip"] > 0, f"round {n}: cache not stale"
                    assert cache.statistics().invalidations > 0, f"round {n}: nothing rechecked"
                    failures += [f"round {n}: {r.target}: {r.reason}"
                                 for r in report.results if r.status is ImageStatus.FAILED]
                assert failures == [], "\n".join(failures)
                assert await verify_corpus(corpus, registry.url, repo_map=repo_map) == []
            finally:
                registry.stop()
