"""Multi-target sync through the staging area: every target uploads the staged file with
``os.sendfile`` (the bytes never pass through the client), one source GET per blob, and every
blob arrives byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mockregistry import MockOptions, serve_mock
from ocync.engine.report import ImageStatus
from ocync.engine.staging import BlobStage
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.integration.test_sync_staging import _sync_two_targets


async def test_staged_blobs_go_out_by_sendfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = build_corpus(CorpusSpec(seed=34, repositories=2, tags_per_repo=2, shared_base_layers=1))
    sent = {"calls": 0, "bytes": 0}
    real_sendfile = os.sendfile

    def counting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = real_sendfile(out_fd, in_fd, offset, count)
        sent["calls"] += 1
        sent["bytes"] += n
        return n

    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    async with (
        serve_mock(MockOptions(seed=1)) as src,
        serve_mock(MockOptions(seed=2)) as dst0,
        serve_mock(MockOptions(seed=3)) as dst1,
    ):
        await push_corpus(corpus, src.url)
        src.reset_stats()
        stage = BlobStage(tmp_path / "staging", size_limit=None)
        report = await _sync_two_targets(src.url, [dst0.url, dst1.url], sorted(corpus.repos), stage)
        assert report.count(ImageStatus.SYNCED) == 2 * len(corpus.images), report.describe()
        staged = stage.statistics()
        assert staged.staged_blobs > 0
        assert src.stats()["by_kind"]["blob_get"] == len(corpus.blobs)  # one pull per blob
        for dst in (dst0, dst1):
            assert await verify_corpus(corpus, dst.url, check_blob_bytes=True) == []
    # monolithic PUTs aside (none with the generic profile), every staged byte went by sendfile
    assert sent["bytes"] == 2 * staged.staged_bytes > 0
