"""SIGINT and SIGTERM against the real ``ocync`` CLI: one rule for every command. An interrupt
that left work undone exits 1 and says how much is undone (work discovery had not produced yet
included); a stop with nothing undone (``watch`` between runs) exits 0; each says in one line
that it was interrupted, never a traceback.

The mocks run in this test's trio loop (the source with ``latency_ms`` so discovery is slow);
``ocync`` runs as a subprocess and is signalled once the mock's counters show it has started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, MockRegistry, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
REPOS = ("corpus/repo0", "corpus/repo1")


@asynccontextmanager
async def slow_source_and_target(tmp_path: Path, latency_ms: float) -> AsyncIterator[tuple[MockRegistry, MockRegistry]]:
    """A source holding a small corpus that answers every request after ``latency_ms``, and an
    empty target. The corpus is pushed to a fast mock on the same storage directory first."""
    corpus = build_corpus(CorpusSpec(seed=5, repositories=len(REPOS), tags_per_repo=3, shared_base_layers=1))
    storage = tmp_path / "src-store"
    async with serve_mock(MockOptions(storage_dir=storage)) as fast:
        await push_corpus(corpus, fast.url)
    async with (
        serve_mock(MockOptions(storage_dir=storage, latency_ms=latency_ms)) as src,
        serve_mock(MockOptions()) as dst,
    ):
        yield src, dst


def write_config(path: Path, src: MockRegistry, dst: MockRegistry, cache: Path) -> Path:
    mappings = "".join(f"  - {{from: {r}, to: mirror/{r.split('/', 1)[1]}}}\n" for r in REPOS)
    path.write_text(
        f"global: {{cache_dir: '{cache}'}}\n"
        f"registries:\n  src: {{url: '{src.host}'}}\n  dst: {{url: '{dst.host}'}}\n"
        f"defaults: {{source: src, targets: dst}}\nmappings:\n{mappings}"
    )
    return path


async def start_ocync(argv: list[str]) -> trio.Process:
    # buffered stdout, as in a pipeline: what ocync prints must be flushed to be seen
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(Path.cwd())
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", "ocync", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


async def _read_all(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    while chunk := await stream.receive_some(1 << 16):
        into += chunk


async def finish(proc: trio.Process, signum: signal.Signals, out: bytearray) -> tuple[int, str, str]:
    """Send ``signum`` to a running ``proc``; read the rest of its output; (code, stdout, stderr)."""
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.poll() is None, "ocync ended before the signal"
    err = bytearray()
    try:
        with trio.fail_after(60):
            proc.send_signal(signum)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_all, proc.stdout, out)
                nursery.start_soon(_read_all, proc.stderr, err)
            code = await proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            await proc.wait()
    text = out.decode() + err.decode()
    assert "Traceback" not in text, text
    return code, out.decode(), err.decode()


async def signal_when(argv: list[str], started: Callable[[], bool], signum: signal.Signals) -> tuple[int, str, str]:
    """Run ``ocync ARGV``; once ``started()`` holds, send ``signum``; return (code, stdout, stderr)."""
    proc = await start_ocync(argv)
    try:
        with trio.fail_after(60):
            # another process's progress, seen through the mock's counters: no event to wait on
            while not started() and proc.poll() is None:  # noqa: ASYNC110
                await trio.sleep(0.01)
    finally:
        if proc.poll() is None and not started():
            proc.kill()
    return await finish(proc, signum, bytearray())


def undone_in(text: str) -> int:
    match = re.search(r"interrupted, (\d+) left undone", text)
    assert match, text
    return int(match.group(1))


@pytest.mark.parametrize("signum", SIGNALS)
async def test_sync_interrupted_while_discovery_is_slow_leaves_work_undone(
    tmp_path: Path, signum: signal.Signals
) -> None:
    async with slow_source_and_target(tmp_path, latency_ms=1000) as (src, dst):
        cfg = write_config(tmp_path / "ocync.yaml", src, dst, tmp_path / "cache")
        # the registry checks are answered: discovery (tag lists, manifest HEADs) is under way
        code, out, err = await signal_when(
            ["sync", "-c", str(cfg)], lambda: src.stats()["by_kind"]["ping"] >= 1, signum
        )
        assert code == 1, out + err
        undone = undone_in(out)
        assert undone > 0, out
        assert err.splitlines()[-1] == f"ocync: interrupted: {undone} left undone", err
        # and with --json: the same count, how it is made up
        code, out, err = await signal_when(
            ["sync", "-c", str(cfg), "--json"], lambda: src.stats()["by_kind"]["ping"] >= 2, signum
        )
        doc = json.loads(out)
        assert code == 1 and doc["exit_code"] == 1, err
        summary = doc["summary"]
        assert summary["interrupted"] is True and summary["undone"] > 0
        assert summary["undone"] == sum(summary["undone_detail"].values())
        # everything not copied is accounted for: tags not live at the target are undone work
        live = sum(len(dst.store.repos[n].tags) for n in dst.store.repository_names())
        assert summary["images_synced"] <= live


@pytest.mark.parametrize("signum", SIGNALS)
async def test_watch_interrupted_between_runs_exits_0(tmp_path: Path, signum: signal.Signals) -> None:
    async with slow_source_and_target(tmp_path, latency_ms=0) as (src, dst):
        cfg = write_config(tmp_path / "ocync.yaml", src, dst, tmp_path / "cache")
        proc = await start_ocync(["watch", "-c", str(cfg), "--interval", "600"])
        assert proc.stdout is not None
        out = bytearray()
        with trio.fail_after(60):
            # the first run's summary line: watch now sleeps for 600 s
            while b"\nimages: " not in b"\n" + out:
                chunk = await proc.stdout.receive_some(1 << 16)
                assert chunk, f"watch ended: {out.decode()}"
                out += chunk
        code, stdout, err = await finish(proc, signum, out)
    assert "6 synced" in stdout, stdout
    assert code == 0, err
    assert err.splitlines()[-1] == "ocync: interrupted between runs: nothing left undone", err


@pytest.mark.parametrize("signum", SIGNALS)
async def test_watch_interrupted_during_a_run_exits_1(tmp_path: Path, signum: signal.Signals) -> None:
    async with slow_source_and_target(tmp_path, latency_ms=1000) as (src, dst):
        cfg = write_config(tmp_path / "ocync.yaml", src, dst, tmp_path / "cache")
        code, out, err = await signal_when(
            ["watch", "-c", str(cfg), "--interval", "600"],
            lambda: src.stats()["by_kind"]["ping"] >= 1, signum,
        )
    assert code == 1, out + err
    undone = undone_in(out)
    assert undone > 0 and err.splitlines()[-1] == f"ocync: interrupted: {undone} left undone", err
