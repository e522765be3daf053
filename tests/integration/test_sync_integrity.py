"""``ocync sync`` when blob bodies arrive damaged: a body that fails its digest check is
fetched again (bounded, like a truncated one), and nothing unverified is ever committed.

The source mock damages the first N bodies it serves of every blob (``corrupt_first``): the
same faults whatever order the engine asks in, so the wire counts are exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from ocync.registry.blobs import INTEGRITY_ATTEMPTS
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus


def _config(path: Path, src: str, targets: list[str], cache: Path, repos: list[str]) -> None:
    registries = f"  src:\n    url: {src}\n" + "".join(
        f"  dst{i}:\n    url: {host}\n" for i, host in enumerate(targets)
    )
    maps = "\n".join(f"  - from: {r}\n    to: mirror/{r.split('/', 1)[1]}" for r in repos)
    path.write_text(
        f"global:\n  cache_dir: {cache}\n  max_concurrent_transfers: 4\n"
        f"registries:\n{registries}"
        f"defaults:\n  source: src\n  targets: [{', '.join(f'dst{i}' for i in range(len(targets)))}]\n"
        f"mappings:\n{maps}\n"
    )


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "ocync", *args], capture_output=True, text=True, timeout=300
        )
    )


def _blob_gets(access_log: Path) -> Counter[str]:
    """Blob GETs per digest, from the mock's access log (one JSON line per request)."""
    gets: Counter[str] = Counter()
    for line in access_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("kind") == "blob_get":
            gets[entry["path"].rsplit("/", 1)[1]] += 1
    return gets


@pytest.mark.parametrize("targets", [1, 2], ids=["streamed", "staged"])
async def test_transiently_corrupted_blobs_are_fetched_again_and_converge(
    targets: int, tmp_path: Path
) -> None:
    """Every blob's first body is damaged in transit: each is fetched exactly twice (one
    target: streamed into the upload; two: downloaded once into staging), every image
    syncs (exit 0) and the targets hold exactly the source's bytes."""
    corpus = build_corpus(CorpusSpec(seed=31, repositories=2, tags_per_repo=2, shared_base_layers=1))
    storage = tmp_path / "source-store"
    async with serve_mock(MockOptions(storage_dir=storage)) as clean:
        await push_corpus(corpus, clean.url)
    log = tmp_path / "source-access.jsonl"
    async with (
        serve_mock(MockOptions(storage_dir=storage, corrupt_first=1, access_log=log)) as src,
        serve_mock(MockOptions(seed=2)) as dst0,
        serve_mock(MockOptions(seed=3)) as dst1,
    ):
        dsts = [dst0, dst1][:targets]
        repos = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        _config(cfg, src.host, [d.host for d in dsts], tmp_path / "cache", repos)
        done = await _cli("sync", "-c", str(cfg))
        assert done.returncode == 0, done.stdout + done.stderr
        stats = src.stats()
        assert stats["faults"].get("corrupt") == len(corpus.blobs), "every blob damaged once"
        assert stats["by_kind"]["blob_get"] == 2 * len(corpus.blobs)
        assert set(_blob_gets(log).values()) == {2}
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in repos}
        for dst in dsts:
            assert await verify_corpus(corpus, dst.url, repo_map=repo_map, check_blob_bytes=True) == []
            assert dst.stats()["digest_invalid"] == 0  # no damaged body was ever offered


async def test_persistently_corrupted_blobs_are_fetched_a_bounded_number_of_times(
    tmp_path: Path,
) -> None:
    """A source that never serves a blob intact: each blob is fetched at most
    INTEGRITY_ATTEMPTS times, every image fails with a digest mismatch (exit 2, no
    traceback) and the target holds nothing."""
    corpus = build_corpus(CorpusSpec(seed=32, repositories=1, tags_per_repo=1, platforms=("linux/amd64",)))
    storage = tmp_path / "source-store"
    async with serve_mock(MockOptions(storage_dir=storage)) as clean:
        await push_corpus(corpus, clean.url)
    log = tmp_path / "source-access.jsonl"
    async with (
        serve_mock(MockOptions(storage_dir=storage, corrupt_first=1000, access_log=log)) as src,
        serve_mock(MockOptions(seed=2)) as dst,
    ):
        repos = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        _config(cfg, src.host, [dst.host], tmp_path / "cache", repos)
        failed = await _cli("sync", "-c", str(cfg))
        assert failed.returncode == 2, failed.stdout + failed.stderr
        assert "Traceback" not in failed.stderr
        output = failed.stdout + failed.stderr
        assert "digest mismatch" in output
        assert f"gave up after {INTEGRITY_ATTEMPTS} attempts" in output
        gets = _blob_gets(log)
        assert gets and max(gets.values()) == INTEGRITY_ATTEMPTS, gets
        assert dst.stats()["blobs"] == 0 and dst.stats()["digest_invalid"] == 0
