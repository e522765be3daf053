"""A sync killed with SIGKILL at a random moment, then run again, converges; and at no moment
does the target hold a tag whose manifest references missing content (a manifest goes up
only after everything it references).

``ocync sync`` runs as a real subprocess; both mocks run in this test's trio loop so the
target's store can be inspected while the sync is writing to it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.property.test_sync_property import dangling

TOKEN = "pat-alice"


def write_config(path: Path, src: str, dst: str, cache: Path) -> None:
    path.write_text(
        f"global:\n  cache_dir: {cache}\n  max_concurrent_transfers: 3\n"
        f"registries:\n  src:\n    url: {src}\n  dst:\n    url: {dst}\n"
        f"    credentials: {{username: alice, password: {TOKEN}}}\n"
        "defaults:\n  source: src\n  targets: dst\n"
        "mappings:\n  - from: corpus/repo0\n    to: mirror/repo0\n"
        "  - from: corpus/repo1\n    to: mirror/repo1\n  - from: corpus/repo2\n    to: mirror/repo2\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sigkill_then_rerun_converges(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    corpus = build_corpus(
        CorpusSpec(
            seed=seed,
            repositories=3,
            tags_per_repo=3,
            shared_base_layers=1,
            layer_size=(64 * 1024, 256 * 1024),
        )
    )
    cfg = tmp_path / "ocync.yaml"
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    async with (
        serve_mock(MockOptions(profile="generic", latency_ms=4, seed=seed)) as src,
        serve_mock(
            MockOptions(
                profile="generic",
                auth="token",
                users={"alice": TOKEN},
                user_namespaces={"alice": ["mirror"]},
                latency_ms=4,
                seed=seed,
            )
        ) as dst,
    ):
        await push_corpus(corpus, src.url)
        write_config(cfg, src.host, dst.host, tmp_path / "cache")
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        # Kill once a random number of blobs has landed (mid-run whatever the machine's speed).
        kill_after_blobs = rng.randint(1, 40)
        seen_tags = 0
        deadline = trio.current_time() + 60
        try:
            while proc.poll() is None and trio.current_time() < deadline:
                assert dangling(dst.store) == []  # checked while the sync writes
                names = dst.store.repository_names()
                seen_tags = sum(len(dst.store.repos[n].tags) for n in names)
                if sum(len(dst.store.repos[n].blobs) for n in names) >= kill_after_blobs:
                    break
                await trio.sleep(0.005)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert dangling(dst.store) == []
        rerun = await trio.run_process(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
        assert rerun.returncode == 0, rerun.stdout.decode() + rerun.stderr.decode()
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in corpus.repos}
        problems = await verify_corpus(
            corpus, dst.url, username="alice", password=TOKEN, repo_map=repo_map
        )
        assert problems == [], f"seed {seed}, tags seen before the kill: {seen_tags}"
        assert dangling(dst.store) == []


async def test_sigint_drains_saves_cache_and_reports(tmp_path: Path) -> None:
    corpus = build_corpus(
        CorpusSpec(
            seed=9,
            repositories=3,
            tags_per_repo=3,
            shared_base_layers=1,
            layer_size=(64 * 1024, 256 * 1024),
        )
    )
    cfg = tmp_path / "ocync.yaml"
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    async with (
        serve_mock(MockOptions(profile="generic", latency_ms=8)) as src,
        serve_mock(
            MockOptions(
                profile="generic",
                auth="token",
                users={"alice": TOKEN},
                user_namespaces={"alice": ["mirror"]},
                latency_ms=8,
            )
        ) as dst,
    ):
        await push_corpus(corpus, src.url)
        write_config(cfg, src.host, dst.host, tmp_path / "cache")
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg), "--drain-timeout", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        with trio.fail_after(60):
            # polling another process's progress through the mock's store: no event to wait on
            while not any(dst.store.repos[n].blobs for n in dst.store.repository_names()):  # noqa: ASYNC110
                await trio.sleep(0.005)
            proc.send_signal(signal.SIGINT)
            out = await proc.stdout.receive_some(1 << 20)
            err = await proc.stderr.receive_some(1 << 20)
            code = await proc.wait()
        text = out.decode() + err.decode()
        assert "Traceback" not in text
        assert code in (0, 1), text
        if code == 1:
            assert "interrupted" in text
        assert (tmp_path / "cache" / "transfer-cache.json").is_file()  # saved on the way out
        assert dangling(dst.store) == []
