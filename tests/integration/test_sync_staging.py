"""Multi-target sync when the staging area under cache_dir cannot take a file (a full disk):
every image still syncs, each target pulls its own copy from the source, one warning.

A full disk is simulated at the file seam (``os.posix_fallocate`` reserving the staged file,
or the download's writes): no tiny filesystem is needed, and root ignores read-only modes.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus, RunReport
from ocync.engine.staging import BlobStage
from ocync.oci.manifest import Descriptor
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus


def _no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def _sync_two_targets(src_url: str, dst_urls: list[str], repos: list[str], stage: BlobStage) -> RunReport:
    anon = ClientSettings(auth=AuthSettings(kind="anonymous"))
    controllers = ControllerRegistry()
    async with (
        RegistryClient(src_url, anon, controllers=controllers) as sc,
        RegistryClient(dst_urls[0], anon, controllers=controllers) as d0,
        RegistryClient(dst_urls[1], anon, controllers=controllers) as d1,
    ):
        endpoints = [ClientEndpoint("src", sc), ClientEndpoint("dst0", d0), ClientEndpoint("dst1", d1)]
        for ep in endpoints:
            await ep.prepare()
        maps = [
            MappingSpec(name=r, source="src", source_repo=r,
                        targets=(TargetRepo("dst0", r), TargetRepo("dst1", r)))
            for r in repos
        ]
        engine = SyncEngine(maps, {"src": endpoints[0]}, {"dst0": endpoints[1], "dst1": endpoints[2]},
                            TransferCache(), EngineOptions(max_concurrent_transfers=4), stage=stage)
        try:
            return await engine.run()
        finally:
            stage.cleanup()


@pytest.mark.parametrize("where", ["reserving", "downloading"])
async def test_full_staging_disk_falls_back_to_one_pull_per_target(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    corpus = build_corpus(CorpusSpec(seed=33, repositories=2, tags_per_repo=2, shared_base_layers=1))
    repos = sorted(corpus.repos)
    failed_downloads: list[str] = []
    if where == "reserving":
        # the disk is full before anything is pulled: no staged download at all
        monkeypatch.setattr(os, "posix_fallocate", _no_space)
    else:
        # the disk fills up while a staged download writes (after its GET)
        real = ClientEndpoint.download_blob

        async def download_then_no_space(self: ClientEndpoint, repo: str, desc: Descriptor, path: Path) -> None:
            await real(self, repo, desc, path)
            failed_downloads.append(str(desc.digest))
            _no_space()

        monkeypatch.setattr(ClientEndpoint, "download_blob", download_then_no_space)
    async with (
        serve_mock(MockOptions(seed=1)) as src,
        serve_mock(MockOptions(seed=2)) as dst0,
        serve_mock(MockOptions(seed=3)) as dst1,
    ):
        await push_corpus(corpus, src.url)
        src.reset_stats()
        stage = BlobStage(tmp_path / "cache" / "staging", size_limit=None)
        with caplog.at_level(logging.WARNING):
            report = await _sync_two_targets(src.url, [dst0.url, dst1.url], repos, stage)
        assert report.count(ImageStatus.SYNCED) == 2 * len(corpus.images), report.describe()
        assert report.exit_code() == 0
        assert "internal error" not in report.describe()
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "No space left on device" in warnings[0], warnings
        assert "bug" not in warnings[0]
        # one pull per target for every blob, plus the staged downloads that were lost
        assert src.stats()["by_kind"]["blob_get"] == 2 * len(corpus.blobs) + len(failed_downloads)
        if where == "reserving":
            assert failed_downloads == []
        else:  # at least one staged download was lost, each of a different blob
            assert failed_downloads and len(failed_downloads) == len(set(failed_downloads))
        assert stage.statistics().staged_blobs == 0
        for dst in (dst0, dst1):
            assert await verify_corpus(corpus, dst.url, check_blob_bytes=True) == []
