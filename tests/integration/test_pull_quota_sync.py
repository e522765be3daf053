"""Docker Hub's pull quota, end to end: ``ocync sync`` (the real CLI, a subprocess) against the
mock's ``dockerhub`` profile, counted by the mock's ``/_mock/stats``.

A run that needs more pulls than remain copies what fits, in the usual order, defers the rest
(listed in stderr and ``--json``, exit 1) without a single 429; the run after the mock's rolling
window has passed copies the deferred images; a warm run (HEADs only) spends no pull.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from mockregistry import MockOptions, MockRegistry, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.integration.test_wire_counts import CLI_TIMEOUT, ROOT, TARGET_NAMESPACE, hermetic_env

LIMIT, WINDOW, MIN_REMAINING = 10, 10, 2
# 12 single-manifest tags in one repository: one pull each.
SPEC = CorpusSpec(seed=61, repositories=1, tags_per_repo=12, platforms=("linux/amd64",), layers_per_image=1,
                  shared_base_layers=1, layer_size=(256, 512))
# A multi-arch corpus: each tag is an index with two children (three pulls).
INDEX_SPEC = CorpusSpec(seed=62, repositories=1, tags_per_repo=4, layers_per_image=1, shared_base_layers=1,
                        layer_size=(256, 512))


# The source's requests by kind (pinned; zero counts left out). First run: the ping, the tag
# list, one HEAD to read the quota, 8 pulls (10 - min_remaining 2), the blobs of the 8 images
# (one shared layer + 8 configs) and their referrers listings. After the window: 8 HEADs of the
# copied tags (trusted at the target by the cache), the 4 deferred pulled and copied (their 4
# configs), every tag's referrers listed. Warm: one HEAD per tag and the referrers listings.
EXPECTED_FIRST = {"ping": 1, "tags_list": 1, "manifest_head": 1, "manifest_get": 8, "blob_get": 9, "referrers": 8}
# (artifacts.refresh: cached, the default: referrers are listed for the 4 images copied, not
# for tags the transfer cache vouches for)
EXPECTED_SECOND = {"ping": 1, "tags_list": 1, "manifest_head": 8, "manifest_get": 4, "blob_get": 4, "referrers": 4}
EXPECTED_WARM = {"ping": 1, "tags_list": 1, "manifest_head": 12}


def nonzero(stats: dict[str, Any]) -> dict[str, int]:
    return {kind: n for kind, n in stats["by_kind"].items() if n}


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    with trio.fail_after(CLI_TIMEOUT):
        result = await trio.run_process([sys.executable, "-m", "ocync", *args], capture_stdout=True,
                                        capture_stderr=True, check=False, env=env, cwd=ROOT)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def write_config(path: Path, src: MockRegistry, dst: MockRegistry, repo: str, cache: Path,
                 min_remaining: int) -> None:
    path.write_text("\n".join([
        "global:",
        f"  cache_dir: {cache}",
        "registries:",
        "  hub:",
        f"    url: {src.host}",
        "    profile: dockerhub",
        "    auth_type: anonymous",
        f"    min_remaining: {min_remaining}",
        "  dst:",
        f"    url: {dst.host}",
        "    auth_type: anonymous",
        "defaults:",
        "  source: hub",
        "  targets: dst",
        "mappings:",
        f"  - {{from: {repo}, to: {TARGET_NAMESPACE}/{repo.rsplit('/', 1)[1]}}}",
    ]) + "\n")


async def stats(mock: MockRegistry) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{mock.url}/_mock/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


async def wait_for_window(mock: MockRegistry, principal: str = "127.0.0.1") -> None:
    """Until every pull has left the mock's rolling window (bounded: twice the window)."""
    with trio.fail_after(WINDOW * 2 + 30):
        while True:
            if (await stats(mock))["pulls"][principal]["remaining"] >= LIMIT:
                return
            await trio.sleep(0.2)  # the window rolls on the mock's real clock


async def listed_tags(mock: MockRegistry, repo: str) -> list[str]:
    """The source's tag list: with no ``sort`` in the config, the order tags are examined in."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{mock.url}/v2/{repo}/tags/list")
        response.raise_for_status()
        tags: list[str] = response.json()["tags"]
        return tags


def deferred_tags(doc: dict[str, Any]) -> list[str]:
    return [d["source"].rsplit(":", 1)[1] for d in doc["deferred"]]


async def test_a_run_over_the_pull_quota_defers_what_does_not_fit_then_completes(tmp_path: Path) -> None:
    corpus = build_corpus(SPEC)
    (repo,) = corpus.repos
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    hub_options = MockOptions(profile="dockerhub", pull_limit=f"{LIMIT}/{WINDOW}s", seed=1)
    async with serve_mock(hub_options) as hub, serve_mock(MockOptions(profile="generic", seed=2)) as dst:
        await push_corpus(corpus, hub.url)
        tags = await listed_tags(hub, repo)
        await wait_for_window(hub)
        hub.reset_stats()
        write_config(config, hub, dst, repo, tmp_path / "cache", MIN_REMAINING)

        code, out, err = await run_cli(env, "sync", "-c", str(config), "--json")
        first, first_stats = json.loads(out), await stats(hub)
        await wait_for_window(hub)
        hub.reset_stats()
        code2, out2, err2 = await run_cli(env, "sync", "-c", str(config), "--json")
        second, second_stats = json.loads(out2), await stats(hub)
        hub.reset_stats()
        code3, out3, _ = await run_cli(env, "sync", "-c", str(config), "--json")
        warm, warm_stats = json.loads(out3), await stats(hub)

    fits = LIMIT - MIN_REMAINING
    assert nonzero(first_stats) == EXPECTED_FIRST, nonzero(first_stats)
    assert nonzero(second_stats) == EXPECTED_SECOND, nonzero(second_stats)
    assert nonzero(warm_stats) == EXPECTED_WARM, nonzero(warm_stats)
    assert code == 1, err
    assert first_stats["throttled"] == 0 and first["summary"]["throttled"] == 0, first_stats
    assert first_stats["by_kind"]["manifest_get"] == fits, first_stats["by_kind"]
    # the quota was read from one HEAD before the first GET (HEADs are not pulls)
    assert first_stats["by_kind"]["manifest_head"] == 1, first_stats["by_kind"]
    assert first_stats["pulls"]["127.0.0.1"]["pulls"] == fits
    assert first["summary"]["images_synced"] == fits and first["summary"]["images_deferred"] == len(tags) - fits
    # what fits is a prefix of the usual order; the rest is listed, with the reason
    assert deferred_tags(first) == tags[fits:], first["deferred"]
    reason = re.compile(rf"deferred, needs 1 more pull\(s\): pull quota: \d+ remaining, min_remaining {MIN_REMAINING}")
    assert all(reason.search(d["reason"]) for d in first["deferred"]), first["deferred"]
    for tag in tags[fits:]:
        assert re.search(rf"ocync: deferred: hub/{re.escape(repo)}:{re.escape(tag)} -> dst/\S+: deferred, "
                         rf"needs 1 more pull\(s\): pull quota: \d+ remaining, min_remaining {MIN_REMAINING}\n", err), err
    assert "ocync: error:" not in err, err

    assert code2 == 0, err2
    assert second_stats["throttled"] == 0
    assert second_stats["by_kind"]["manifest_get"] == len(tags) - fits, second_stats["by_kind"]
    assert second["summary"]["images_synced"] == len(tags) - fits and not second["deferred"]

    # warm: one HEAD per tag, no pull at all
    assert code3 == 0 and warm["summary"]["images_skipped"] == len(tags)
    assert warm_stats["by_kind"]["manifest_get"] == 0 and warm_stats["by_kind"]["manifest_head"] == len(tags)
    assert warm_stats["pulls"]["127.0.0.1"]["pulls"] == 0


async def test_an_index_whose_children_do_not_fit_is_deferred_whole(tmp_path: Path) -> None:
    corpus = build_corpus(INDEX_SPEC)
    (repo,) = corpus.repos
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    # 8 pulls, 1 kept: two indexes of 3 pulls fit (6); the third's root fits, its children not.
    hub_options = MockOptions(profile="dockerhub", pull_limit="8/1h", seed=1)
    async with serve_mock(hub_options) as hub, serve_mock(MockOptions(profile="generic", seed=2)) as dst:
        await push_corpus(corpus, hub.url)
        tags = await listed_tags(hub, repo)
        hub.reset_stats()
        before = (await stats(hub))["pulls"]["127.0.0.1"]["remaining"]
        write_config(config, hub, dst, repo, tmp_path / "cache", 1)
        code, out, err = await run_cli(env, "sync", "-c", str(config), "--json")
        doc, hub_stats = json.loads(out), await stats(hub)
    assert before == 8
    assert code == 1, err
    assert hub_stats["throttled"] == 0
    assert doc["summary"]["images_synced"] == 2, doc["summary"]
    assert deferred_tags(doc) == tags[2:], doc["deferred"]
    # 2 x 3 pulls, then one root (its 2 children would leave 0 < min_remaining 1); the fourth
    # image does not even GET its root
    assert hub_stats["by_kind"]["manifest_get"] == 7, hub_stats["by_kind"]
    assert "needs 2 more pull(s)" in doc["deferred"][0]["reason"]
    assert "needs 1 more pull(s)" in doc["deferred"][1]["reason"]
    planner = doc["controllers"]["hub"]["pull_quota"]
    assert planner["pulls_wasted"] == 1 and planner["images_deferred"] == 2 and planner["min_remaining"] == 1


async def test_analyze_reports_pulls_needed_against_pulls_remaining(tmp_path: Path) -> None:
    corpus = build_corpus(INDEX_SPEC)  # 4 indexes of 2 children: 12 pulls for a cold sync
    (repo,) = corpus.repos
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    async with serve_mock(MockOptions(profile="dockerhub", pull_limit="30/1h", seed=1)) as hub, \
            serve_mock(MockOptions(profile="generic", seed=2)) as dst:
        await push_corpus(corpus, hub.url)
        write_config(config, hub, dst, repo, tmp_path / "cache", 1)
        code, out, err = await run_cli(env, "analyze", "-c", str(config), "--json")
        code_text, text, err_text = await run_cli(env, "analyze", "-c", str(config))
        hub_stats = await stats(hub)
    assert code == 0 and code_text == 0, err + err_text
    (quota,) = json.loads(out)["pull_quotas"]
    # analyze reads the manifests itself: its 12 pulls are spent before the figure is taken
    assert quota == {"registry": "hub", "needed": 12, "remaining": 18, "min_remaining": 1, "spent": 12,
                     "limit": 30, "window": 3600.0, "short_by": 0}
    assert ("source hub: 12 pulls needed, 6 remaining (min_remaining 1; this analysis spent 12): "
            "short by 7: a sync defers what does not fit") in text
    assert hub_stats["throttled"] == 0 and hub_stats["pulls"]["127.0.0.1"]["pulls"] == 24


async def test_copy_over_the_pull_quota_is_deferred_with_exit_1(tmp_path: Path) -> None:
    corpus = build_corpus(SPEC)
    (repo,) = corpus.repos
    tag = sorted(corpus.repos[repo])[0]
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    async with serve_mock(MockOptions(profile="dockerhub", pull_limit="3/1h", seed=1)) as hub, \
            serve_mock(MockOptions(profile="generic", seed=2)) as dst:
        await push_corpus(corpus, hub.url)
        write_config(config, hub, dst, repo, tmp_path / "cache", 3)  # keep all 3: nothing may be pulled
        host = hub.host
        code, out, err = await run_cli(env, "copy", "-c", str(config), f"{hub.host}/{repo}:{tag}",
                                       f"{dst.host}/{TARGET_NAMESPACE}/one:{tag}")
        hub_stats = await stats(hub)
    assert code == 1, (out, err)
    assert err == (f"ocync: error: {host}/{repo}:{tag}: deferred, needs 1 more pull(s): "
                   "pull quota: 3 remaining, min_remaining 3\n"), err
    assert "Traceback" not in err
    assert hub_stats["by_kind"]["manifest_get"] == 0 and hub_stats["throttled"] == 0
