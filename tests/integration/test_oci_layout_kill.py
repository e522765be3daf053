"""``ocync sync`` into a layout killed with SIGKILL at a random moment, then run again: at no
moment does the layout hold a partial blob in blobs/ or an index.json naming something
missing; the rerun removes the killed run's temporary files and skopeo reads every tag."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.integration.layoutsupport import ENV, export_config, layout_problems, ocync


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
async def test_sigkill_during_a_layout_write_then_rerun(tmp_path: Path, skopeo: str, seed: int) -> None:
    rng = random.Random(seed)
    corpus = build_corpus(CorpusSpec(seed=seed, repositories=3, tags_per_repo=2, shared_base_layers=1,
                                     layer_size=(64 * 1024, 256 * 1024)))
    repos = sorted(corpus.repos)
    layout = tmp_path / "mirror"
    async with serve_mock(MockOptions(profile="generic", latency_ms=4, seed=seed)) as src:
        await push_corpus(corpus, src.url)
        cfg = export_config(tmp_path / "export.yaml", src.host, layout, tmp_path / "cache", repos)
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
        )
        kill_after_blobs = rng.randint(1, len(corpus.blobs) - 1)
        deadline = trio.current_time() + 60
        try:
            while proc.poll() is None and trio.current_time() < deadline:
                if (layout / "index.json").exists():
                    assert layout_problems(layout) == [], f"seed {seed}"  # checked while it writes
                    if len(list((layout / "blobs").glob("*/*"))) >= kill_after_blobs:
                        break
                await trio.sleep(0.005)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
        assert layout_problems(layout) == [], f"seed {seed}, killed after {kill_after_blobs} blobs"
        code, out = await ocync("sync", "-c", str(cfg))
        assert code == 0, out
    assert layout_problems(layout) == []
    assert not (layout / ".ocync-tmp").exists() or not list((layout / ".ocync-tmp").iterdir())
    for image in corpus.images:
        done = await trio.run_process(
            [skopeo, "inspect", "--raw", f"oci:{layout}:{image.repo}:{image.tag}"],
            capture_stdout=True, capture_stderr=True, check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert "sha256:" + hashlib.sha256(done.stdout).hexdigest() == image.digest
