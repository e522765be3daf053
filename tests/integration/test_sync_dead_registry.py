"""A registry that cannot be reached when the run starts costs only what needs it: the other
targets and the mappings with other sources are mirrored, the dead one is named once, and the
run exits 1. When nothing is left that could run, exit 2 with one line, as before.

``ocync sync`` runs as a real subprocess; the mocks run in this test's trio loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from mockregistry import MockOptions, serve_mock
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.syncrun import without_registries
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.conftest import free_port


async def _sync(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    )


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("ocync: error: ")]


async def test_a_dead_target_leaves_the_other_target_mirrored(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=31, repositories=2, tags_per_repo=2))
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await push_corpus(corpus, src.url)
        repos = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        cfg.write_text(
            f"global: {{cache_dir: {tmp_path / 'cache'}}}\n"
            f"registries:\n  src: {{url: '{src.host}'}}\n  good: {{url: '{dst.host}'}}\n"
            f"  gone: {{url: '{dead}'}}\n"
            "defaults: {source: src, targets: [good, gone]}\n"
            "mappings:\n" + "".join(f"  - {{from: {r}, to: mirror/{r.split('/', 1)[1]}}}\n" for r in repos)
        )
        out = await _sync(cfg, "--json")
        assert out.returncode == 1, out.stderr
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in repos}
        assert await verify_corpus(corpus, dst.url, repo_map=repo_map) == []
    errors = _errors(out.stderr)
    assert len([e for e in errors if dead in e]) == 1, errors  # named once, not once per image
    [line] = errors
    assert line.startswith(f"ocync: error: registry gone: {dead}: connection refused"), line
    doc = json.loads(out.stdout)
    assert doc["exit_code"] == 1
    assert doc["summary"]["images_synced"] == len(corpus.images)
    assert {i["target"].split("/", 1)[0] for i in doc["images"]} == {"good"}


async def test_a_dead_source_leaves_the_other_mapping_mirrored(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=32, repositories=1, tags_per_repo=3))
    dead = f"127.0.0.1:{free_port()}"
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await push_corpus(corpus, src.url)
        [repo] = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        cfg.write_text(
            f"global: {{cache_dir: {tmp_path / 'cache'}}}\n"
            f"registries:\n  alive: {{url: '{src.host}'}}\n  gone: {{url: '{dead}'}}\n"
            f"  dst: {{url: '{dst.host}'}}\n"
            "mappings:\n"
            f"  - {{from: {repo}, to: mirror/a, source: alive, targets: [dst]}}\n"
            f"  - {{from: {repo}, to: mirror/b, source: gone, targets: [dst]}}\n"
        )
        out = await _sync(cfg)
        assert out.returncode == 1, out.stderr
        assert await verify_corpus(corpus, dst.url, repo_map={repo: "mirror/a"}) == []
        assert dst.store.repo("mirror/b") is None
    [line] = _errors(out.stderr)
    assert line.startswith(f"ocync: error: registry gone: {dead}: connection refused"), line
    assert out.stdout.strip().splitlines()[-1].startswith(f"images: {len(corpus.images)} synced, 0 skipped, 0 failed")


async def test_every_registry_dead_is_still_one_line_exit_2(tmp_path: Path) -> None:
    first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    cfg = tmp_path / "ocync.yaml"
    cfg.write_text(
        f"global: {{cache_dir: {tmp_path / 'cache'}}}\n"
        f"registries:\n  src: {{url: '{first}'}}\n  dst: {{url: '{second}'}}\n"
        "mappings:\n  - {from: a/b, source: src, targets: [dst]}\n"
    )
    out = await _sync(cfg)
    assert out.returncode == 2 and out.stdout == ""
    [line] = _errors(out.stderr)
    assert f"registry src: {first}: connection refused" in line
    assert f"registry dst: {second}: connection refused" in line


def test_without_registries_drops_dead_targets_and_mappings() -> None:
    a = MappingSpec(name="a", source="src", source_repo="r", targets=(TargetRepo("t1", "x"), TargetRepo("t2", "x")))
    b = MappingSpec(name="b", source="gone", source_repo="r", targets=(TargetRepo("t1", "y"),))
    c = MappingSpec(name="c", source="src", source_repo="r", targets=(TargetRepo("t2", "z"),))
    kept = without_registries([a, b, c], {"gone", "t2"})
    assert [(m.name, [t.registry for t in m.targets]) for m in kept] == [("a", ["t1"])]
    assert without_registries([a, b, c], set()) == [a, b, c]
