"""``ocync sync --shard I/N`` and ``ocync analyze --shards N`` as real processes: the dry run
names the shard's share, the N shard runs copy the mappings once in all, each shard keeps its
own cache file, analyze reports the split and the extra source pulls it costs (a shared base
layer is pulled once per shard that needs it), and a bad shard is one line with exit 3."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def write_config(path: Path, src: str, dst: str, repos: list[str]) -> None:
    mappings = "".join(f"  - {{from: {r}, to: mirror/{r.split('/', 1)[1]}}}\n" for r in repos)
    path.write_text(
        f"global: {{cache_dir: {path.parent / 'cache'}}}\n"
        f"registries:\n  src: {{url: {src}}}\n  dst: {{url: {dst}}}\n"
        f"defaults: {{source: src, targets: dst}}\nmappings:\n{mappings}"
    )


async def ocync(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = await trio.run_process([sys.executable, "-m", "ocync", *argv], capture_stdout=True,
                                  capture_stderr=True, check=False, env=env or ENV)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_shards_split_the_mappings_and_analyze_counts_the_cost(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=5, repositories=5, tags_per_repo=1, platforms=("linux/amd64",),
                                     shared_base_layers=1))
    cfg = tmp_path / "ocync.yaml"
    async with serve_mock(MockOptions()) as src, serve_mock(MockOptions()) as dst:
        await push_corpus(corpus, src.url)
        write_config(cfg, src.host, dst.host, sorted(corpus.repos))

        code, out, err = await ocync("analyze", "-c", str(cfg), "--shards", "3", "--json")
        assert code == 0, err
        split = json.loads(out)["shards"]
        assert split["count"] == 3
        kept = [s["mappings"] for s in split["shards"]]
        assert sorted(m for ms in kept for m in ms) == sorted(
            f"mappings[{i}] {src.host}/{r} -> mirror/{r.split('/', 1)[1]}" for i, r in enumerate(sorted(corpus.repos))
        )
        used = sum(1 for ms in kept if ms)
        assert split["extra_source_pulls"] == used - 1  # the one shared base layer, once per extra shard
        code, text, err = await ocync("analyze", "-c", str(cfg), "--shards", "3")
        assert code == 0 and "extra source blob pulls" in text and "blob dedup does not cross shards" in text

        for index in range(3):
            code, out, err = await ocync("sync", "-c", str(cfg), "--dry-run", "--shard", f"{index}/3")
            assert code == 0, err
            assert out.splitlines()[0] == f"shard {index}/3: {len(kept[index])} of 5 mappings"

        copied: list[str] = []
        for index in range(3):  # the Indexed Job's way: --shards N with JOB_COMPLETION_INDEX
            env = {**ENV, "JOB_COMPLETION_INDEX": str(index)}
            code, out, err = await ocync("sync", "-c", str(cfg), "--shards", "3", "--json", env=env)
            assert code == 0, err
            copied += [r["target"] for r in json.loads(out)["images"] if r["status"] == "synced"]
            assert (tmp_path / "cache" / f"transfer-cache.shard-{index}-of-3.json").is_file()
        assert len(copied) == len(set(copied)) == len(corpus.images)
        assert not (tmp_path / "cache" / "transfer-cache.json").exists()

        code, out, err = await ocync("sync", "-c", str(cfg), "--shard", "1/3", "--json",
                                     env={**ENV, "OCYNC_SHARD": "0/3"})
        assert code == 0 and json.loads(out)["summary"]["images_failed"] == 0, err


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        pytest.param(["--shard", "3/3"], {}, "--shard '3/3': expected I/N", id="index-out-of-range"),
        pytest.param(["--shard", "x"], {}, "--shard 'x'", id="not-a-shard"),
        pytest.param(["--shards", "3"], {}, "needs --shard I/N or JOB_COMPLETION_INDEX", id="no-index"),
        pytest.param([], {"OCYNC_SHARD": "1/0"}, "OCYNC_SHARD '1/0'", id="bad-env"),
        pytest.param(["--shards", "0"], {}, "expected a whole number >= 1", id="zero-shards"),
    ],
)
async def test_bad_shard_is_one_line_exit_3(tmp_path: Path, argv: list[str], env: dict[str, str], needle: str) -> None:
    cfg = tmp_path / "ocync.yaml"
    write_config(cfg, "127.0.0.1:1", "127.0.0.1:2", ["corpus/a"])
    code, out, err = await ocync("sync", "-c", str(cfg), *argv, env={**ENV, **env})
    assert code == 3, err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
