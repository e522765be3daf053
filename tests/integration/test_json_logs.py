"""``--log-format json``: every stderr line of a sync that meets faults (5xx, resets, a dead
registry) is one JSON object, at every log level; the known token appears in neither format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.conftest import free_port

TOKEN = "pat-json-logs-0123456789"


async def run(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "ocync", *args], capture_output=True, text=True, timeout=180))


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_sync_with_faults_logs_json_lines_without_the_token(tmp_path: Path, log_format: str) -> None:
    corpus = build_corpus(CorpusSpec(seed=41, repositories=2, tags_per_repo=2))
    dead = f"127.0.0.1:{free_port()}"
    dst_opts = MockOptions(auth="token", users={"alice": TOKEN}, user_namespaces={"alice": ["mirror"]},
                           fault_rate=0.15, reset_rate=0.05, seed=9)
    async with serve_mock(MockOptions()) as src, serve_mock(dst_opts) as dst:
        await push_corpus(corpus, src.url)
        maps = "".join(f"  - {{from: {r}, to: mirror/{r}}}\n" for r in sorted(corpus.repos))
        cfg = tmp_path / "ocync.yaml"
        cfg.write_text(
            f"global: {{cache_dir: '{tmp_path / 'cache'}'}}\n"
            f"registries:\n  src: {{url: '{src.host}'}}\n"
            f"  dst: {{url: '{dst.host}', credentials: {{username: alice, password: {TOKEN}}}}}\n"
            f"  dead: {{url: '{dead}', credentials: {{username: alice, password: {TOKEN}}}}}\n"
            f"defaults: {{source: src, targets: [dst, dead]}}\nmappings:\n{maps}"
        )
        out = await run("sync", "-c", str(cfg), "-vv", "--log-format", log_format, "--timeout", "5")
    assert out.returncode == 1, out.stderr[-2000:]  # the dead target: partial
    lines = out.stderr.splitlines()
    assert len(lines) > 10, out.stderr  # -vv: debug lines, the errors, the warnings
    assert TOKEN not in out.stderr and TOKEN not in out.stdout
    if log_format == "text":
        assert lines[0].startswith("ocync: ")
        return
    docs = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "event"} <= doc.keys() for doc in docs)
    levels = {doc["level"] for doc in docs}
    assert {"info", "error"} <= levels, levels  # -vv: httpx request lines at info
    assert any(doc["event"] == "error" and "dead" in doc["message"] for doc in docs), docs[-5:]
