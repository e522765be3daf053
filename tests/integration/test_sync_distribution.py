"""``ocync sync`` with Debian's docker-registry (CNCF distribution 2.8) as source and as target.

The reference registry checks what the mock cannot vouch for: that distribution accepts the
engine's upload and mount flow (self-mount existence probes answered 201/202), that copies are
bit-for-bit, and that a warm run moves nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.clientadapter import ClientEndpoint
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.report import ImageStatus, RunReport
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus

pytestmark = pytest.mark.real_registry
TOKEN = "pat-alice"


async def sync(src_url: str, dst_url: str, maps: list[MappingSpec], cache: TransferCache,
               dst: ClientSettings) -> tuple[RunReport, dict[str, int]]:
    controllers = ControllerRegistry()
    anon = ClientSettings(auth=AuthSettings(kind="anonymous"))
    async with (
        RegistryClient(src_url, anon, controllers=controllers) as sc,
        RegistryClient(dst_url, dst, controllers=controllers) as dc,
    ):
        s, d = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
        await s.prepare()
        await d.prepare()
        engine = SyncEngine(maps, {"src": s}, {"dst": d}, cache, EngineOptions(max_concurrent_transfers=4))
        report = await engine.run()
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
