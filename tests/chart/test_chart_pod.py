"""The chart's pod, executed: the Secret made as the guide makes it (kubectl, client-side), the
chart rendered with the guide's values, and the rendered container's command and args run as
a process with exactly the pod's environment, the ConfigMap written at its mount path and the
cache volume at its own, against a ghcr-profile mock with token auth whose user's token is
the Secret's value. Sharded: three such processes at once, one per completion index, under
one principal's small cap: the union is the corpus, nothing is copied twice, no 429."""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import trio
import yaml

from mockregistry import MockOptions, serve_mock
from ocync.config import load_config_file
from ocync.engine.sharding import Shard, resolved_key, select
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.chart.helmchart import GUIDE_VALUES, by_kind, load_values, pod_spec, render
from tests.chart.podrun import (
    container_argv,
    kubectl_secret,
    pod_environment,
    process_environment,
    snapshot,
    volume_paths,
)

TOKEN = "ghp_chartPodTest0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT, read from the Dockerfile."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            argv: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
            return argv
    raise AssertionError("the Dockerfile has no ENTRYPOINT")


def guide_values(tmp: Path, src_host: str, dst_host: str, repos: list[str], **extra: Any) -> dict[str, Any]:
    """The guide's values.yaml with the two registries pointed at the mocks, the corpus as the
    mappings, and the pod's mount paths mapped onto temporary directories."""
    values = copy.deepcopy(load_values(GUIDE_VALUES))
    config = values["config"]
    config["registries"]["src"]["url"] = src_host
    config["registries"]["ghcr"].update({"url": dst_host, "profile": "ghcr", "rate_limit": "100/5s"})
    config["mappings"] = [{"from": r, "to": "myorg/" + r.split("/", 1)[1]} for r in repos]
    values.update({"configDir": str(tmp / "config"), "cache": {"mountPath": str(tmp / "cache")},
                   "extraArgs": ["--json"], **extra})
    return values


def materialize(objects: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    """The ConfigMap written where the pod mounts it, the cache and /tmp volumes made."""
    container: dict[str, Any] = pod_spec(objects)["containers"][0]
    paths = volume_paths(container)
    paths["config"].mkdir(parents=True, exist_ok=True)
    for name, text in by_kind(objects)["ConfigMap"]["data"].items():
        (paths["config"] / name).write_text(text)
    paths["cache"].mkdir(parents=True, exist_ok=True)
    return container


async def run_pod(container: dict[str, Any], secret: dict[str, Any], tmp: Path, index: int | None) -> tuple[int, dict[str, Any], str]:
    env = pod_environment(container, {"ocync-credentials": secret}, completion_index=index)
    home, workdir, scratch = tmp / "home", tmp / "workdir", tmp / f"tmp-{index}"
    for d in (home, workdir, scratch):
        d.mkdir(exist_ok=True)
    done = await trio.run_process(
        container_argv(container, entrypoint(), env),
        env=process_environment(env, home=home, tmp=scratch),
        cwd=workdir,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, json.loads(done.stdout.decode() or "{}"), done.stderr.decode()


def mocks(cap: str | None) -> tuple[MockOptions, MockOptions]:
    src = MockOptions(profile="generic")
    dst = MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                      user_namespaces={"alice": ["myorg"]}, rate_limit=cap)
    return src, dst


async def test_guide_pod_copies_every_image_with_the_secrets_token(tmp_path: Path) -> None:
    secret = kubectl_secret("ocync-credentials", {"GITHUB_TOKEN": TOKEN})
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "ocync-credentials"
    corpus = build_corpus(CorpusSpec(seed=12, repositories=2, tags_per_repo=2, platforms=("linux/amd64",)))
    src_opts, dst_opts = mocks(None)
    async with serve_mock(src_opts) as src, serve_mock(dst_opts) as dst:
        await push_corpus(corpus, src.url)
        values = guide_values(tmp_path, src.host, dst.host, sorted(corpus.repos))
        objects = render(values)
        assert "CronJob" in by_kind(objects)
        container = materialize(objects, tmp_path)
        assert container["envFrom"] == [{"secretRef": {"name": "ocync-credentials"}}]
        (tmp_path / "home").mkdir()
        (tmp_path / "workdir").mkdir()
        before = {d: snapshot(tmp_path / d) for d in ("home", "workdir", "config")}
        code, report, stderr = await run_pod(container, secret, tmp_path, None)
        assert code == 0, stderr
        assert report["summary"]["images_synced"] == len(corpus.images)
        repo_map = {r: "myorg/" + r.split("/", 1)[1] for r in corpus.repos}
        problems = await verify_corpus(corpus, dst.url, username="alice", password=TOKEN,
                                       repo_map=repo_map, check_blob_bytes=True)
        assert problems == []
        # Written only to the cache volume and /tmp: HOME, the working directory and the
        # (read-only) config mount are as they were.
        assert {d: snapshot(tmp_path / d) for d in before} == before
        assert (tmp_path / "cache" / "transfer-cache.json").is_file()
        assert TOKEN not in stderr + json.dumps(report)


async def test_three_shards_copy_the_corpus_once_under_one_cap(tmp_path: Path) -> None:
    secret = kubectl_secret("ocync-credentials", {"GITHUB_TOKEN": TOKEN})
    corpus = build_corpus(CorpusSpec(seed=13, repositories=6, tags_per_repo=2, platforms=("linux/amd64",)))
    src_opts, dst_opts = mocks("150/5s")  # ocync is told 100/5s, each shard takes 1/3 of it
    async with serve_mock(src_opts) as src, serve_mock(dst_opts) as dst:
        await push_corpus(corpus, src.url)
        values = guide_values(tmp_path, src.host, dst.host, sorted(corpus.repos), mode="job", shards=3)
        objects = render(values)
        job = by_kind(objects)["Job"]["spec"]
        assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 3, 3)
        container = materialize(objects, tmp_path)
        results: dict[int, tuple[int, dict[str, Any], str]] = {}

        async def one(index: int) -> None:
            results[index] = await run_pod(container, secret, tmp_path, index)

        async with trio.open_nursery() as nursery:
            for index in range(3):
                nursery.start_soon(one, index)
        copied: Counter[tuple[str, str]] = Counter()
        for index, (code, report, stderr) in sorted(results.items()):
            assert code == 0, f"shard {index}: {stderr}"
            assert report["summary"]["throttled"] == 0
            for r in report["images"]:
                if r["status"] == "synced":
                    copied[(r["target"], r["digest"])] += 1
            cache = tmp_path / "cache" / f"transfer-cache.shard-{index}-of-3.json"
            assert cache.is_file(), f"shard {index} keeps its own cache file"
        assert sum(copied.values()) == len(corpus.images)
        assert max(copied.values()) == 1  # no image copied twice
        # each shard copied exactly its mappings' images (the split depends on the mocks' ports)
        config = load_config_file(tmp_path / "config" / "ocync.yaml", {"GITHUB_TOKEN": TOKEN}).config
        for index in range(3):
            kept = {m.repo_to for m in select(config.resolve(), resolved_key, Shard(index, 3))}
            synced = {r["target"].split("/", 1)[1].rsplit(":", 1)[0] for r in results[index][1]["images"]}
            assert synced == kept, f"shard {index}"
        stats = dst.stats()
        assert stats["throttled"] == 0
        assert stats["by_kind"].get("manifest_put") == len(corpus.images)
        repo_map = {r: "myorg/" + r.split("/", 1)[1] for r in corpus.repos}
        problems = await verify_corpus(corpus, dst.url, username="alice", password=TOKEN,
                                       repo_map=repo_map, check_blob_bytes=True)
        assert problems == []
        assert yaml.safe_load((tmp_path / "config" / "ocync.yaml").read_text())["global"]["cache_dir"] == str(tmp_path / "cache")


def test_kubectl_secret_holds_the_literal() -> None:
    secret = kubectl_secret("ocync-credentials", {"GITHUB_TOKEN": TOKEN})
    assert secret["kind"] == "Secret"
    from tests.chart.podrun import secret_data

    assert secret_data(secret) == {"GITHUB_TOKEN": TOKEN}
    assert subprocess.run(["kubectl", "version", "--client"], capture_output=True, check=False).returncode == 0
