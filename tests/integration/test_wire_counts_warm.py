"""Warm runs by the mocks' ``/_mock/stats``: what the transfer cache's tag stamps save, and
what they cannot know.

A warm run asks the source one manifest HEAD per tag (plus the referrers listing of
``artifacts.refresh: always``; the default ``cached`` lists them only for tags whose target it
verifies) and nothing per tag at the target, with or without
a platform filter: the cache records which source digest each target tag was pushed from and
when. A target tag changed behind ocync's back is therefore caught only when its stamp is
older than ``cache_ttl`` or when the run verifies targets (``verify: always`` on the target
registry, or ``--verify-targets``). Counts are pinned as literals (see test_wire_counts.py);
kinds with a zero count are left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.integration.test_wire_counts import (
    TARGET_NAMESPACE,
    Counts,
    Mocks,
    explain,
    hermetic_env,
    mocks,
    reset,
    run_ocync,
    wire_counts,
    write_sync_config,
)

SPEC = CorpusSpec(seed=43, repositories=3, tags_per_repo=2, shared_base_layers=1, layers_per_image=2,
                  referrers_per_image=1)
INDEX = "application/vnd.oci.image.index.v1+json"
TTL = 3600  # cache_ttl of these configs, seconds

# Warm, with ``platforms: [linux/amd64]`` (each two-platform index is pushed trimmed to one):
# the source index is HEADed and its digest compared with the one recorded when the trimmed
# index was pushed; no source manifest GET (before the stamps: 6 GETs of the indexes plus 6
# target HEADs). Both registries: 6 HEADs + 3 tag lists + 2 pings.
EXPECTED_WARM_PLATFORMS: dict[str, Counts] = {
    "generic": {
        "src": {"manifest_head": 6, "ping": 1, "tags_list": 3},
        "dst": {"ping": 1},
    },
    "ghcr": {
        "src": {"manifest_head": 6, "ping": 1, "tags_list": 3},
        "dst": {"ping": 1},
    },
}
# Warm with artifacts.refresh: on_change, or cached (the default) while every stamp is fresh:
# one source HEAD per tag, the tag lists, the pings. With refresh: always, a referrers listing
# per tag on top.
EXPECTED_WARM_ON_CHANGE: Counts = {"src": {"manifest_head": 6, "ping": 1, "tags_list": 3}, "dst": {"ping": 1}}
EXPECTED_WARM_ALWAYS: Counts = {
    "src": {"manifest_head": 6, "ping": 1, "referrers": 6, "tags_list": 3}, "dst": {"ping": 1},
}
# Warm with verify: always / --verify-targets after one target tag was overwritten out of
# band: a HEAD per target tag as before the stamps, and the one wrong tag copied again the way
# any changed tag is (no blob moves, they are all in the repository): from the source its
# index, 2 children and referrer (4 manifest GETs); at the target the 2 children and the root
# (children are pushed without a HEAD each) and the referrer's tag-schema index, read before
# it is merged (1 GET, 4 PUTs).
EXPECTED_VERIFIED: Counts = {
    "src": {"manifest_get": 4, "manifest_head": 6, "ping": 1, "referrers": 6, "tags_list": 3},
    "dst": {"manifest_get": 1, "manifest_head": 6, "manifest_put": 4, "ping": 1},
}
# Warm after the wrong tag's stamp aged past cache_ttl: only that tag is HEADed at the target
# (and, being copied again, only its referrers are listed).
EXPECTED_EXPIRED: Counts = {
    "src": {"manifest_get": 4, "manifest_head": 6, "ping": 1, "referrers": 1, "tags_list": 3},
    "dst": {"manifest_get": 1, "manifest_head": 1, "manifest_put": 4, "ping": 1},
}


def config_text(m: Mocks, repos: list[str], cache: Path, path: Path, *extra_defaults: str,
                dst_extra: str = "") -> None:
    write_sync_config(path, m, repos, cache)
    text = path.read_text().replace("global:\n", f"global:\n  cache_ttl: {TTL}s\n", 1)
    text = text.replace("defaults:\n", "defaults:\n" + "".join(f"  {d}\n" for d in extra_defaults), 1)
    if dst_extra:
        text = text.replace(f"    url: {m.dst.host}\n", f"    url: {m.dst.host}\n    {dst_extra}\n", 1)
    path.write_text(text)


@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_warm_run_with_platforms_gets_no_source_manifest(profile: str, tmp_path: Path) -> None:
    corpus = build_corpus(SPEC)
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    async with mocks(profile) as m:
        await push_corpus(corpus, m.src.url)
        config_text(m, repos, tmp_path / "cache", config, "platforms: [linux/amd64]")
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        cold: dict[str, object] = json.loads(out)
        reset(m)
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        warm = await wire_counts(m)
        summary = json.loads(out)["summary"]
    assert cold["summary"]["images_synced"] == len(corpus.images)  # type: ignore[index]
    assert summary["images_skipped"] == len(corpus.images), summary
    assert "manifest_get" not in warm["src"], warm
    assert warm == EXPECTED_WARM_PLATFORMS[profile], explain("warm, platforms", warm, EXPECTED_WARM_PLATFORMS[profile])


@pytest.mark.parametrize("refresh", ["cached", "on_change", "always", None])
async def test_warm_run_is_one_request_per_tag_unless_refresh_always(
    refresh: str | None, tmp_path: Path
) -> None:
    corpus = build_corpus(SPEC)
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    extra = () if refresh is None else (f"artifacts: {{refresh: {refresh}}}",)
    async with mocks("generic") as m:
        await push_corpus(corpus, m.src.url)
        config_text(m, repos, tmp_path / "cache", config, *extra)
        await run_ocync(env, "sync", "-c", str(config), "--json")
        reset(m)
        await run_ocync(env, "sync", "-c", str(config), "--json")
        warm = await wire_counts(m)
    if refresh == "always":
        assert warm == EXPECTED_WARM_ALWAYS, explain("warm, always", warm, EXPECTED_WARM_ALWAYS)
        return
    assert warm == EXPECTED_WARM_ON_CHANGE, explain(f"warm, {refresh}", warm, EXPECTED_WARM_ON_CHANGE)
    per_tag = sum(n for side in warm.values() for n in side.values()) / len(corpus.images)
    # 6 HEADs + 3 tag lists + 2 pings over 6 tags: 1 per tag + 1 per repository + 2 in total
    assert per_tag <= 1.0 + len(repos) / len(corpus.images) + 2 / len(corpus.images)


async def overwrite_target_tag(m: Mocks, repo: str, tag: str, other_tag: str) -> str:
    """Out of band: the target's ``tag`` now holds what its ``other_tag`` holds."""
    async with httpx.AsyncClient(timeout=30) as http:
        got = await http.get(f"{m.dst.url}/v2/{repo}/manifests/{other_tag}", headers={"Accept": INDEX})
        got.raise_for_status()
        put = await http.put(f"{m.dst.url}/v2/{repo}/manifests/{tag}", content=got.content,
                             headers={"Content-Type": got.headers["content-type"]})
        put.raise_for_status()
    return "sha256:" + hashlib.sha256(got.content).hexdigest()


async def target_digest(m: Mocks, repo: str, tag: str) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        got = await http.head(f"{m.dst.url}/v2/{repo}/manifests/{tag}", headers={"Accept": INDEX})
        got.raise_for_status()
        return got.headers["docker-content-digest"]


def age_stamp(cache_file: Path, host: str, key: str, seconds: float) -> None:
    """Make one tag's stamp ``seconds`` older, keeping the file valid (checksum, saved_at)."""
    doc = json.loads(cache_file.read_text())
    payload = json.loads(doc["payload"])
    payload["registries"][host]["checked"][key][1] -= seconds
    doc["payload"] = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    doc["checksum"] = "sha256:" + hashlib.sha256(doc["payload"].encode()).hexdigest()
    cache_file.write_text(json.dumps(doc))


@pytest.mark.parametrize("caught_by", ["--verify-targets", "verify: always", "stamp expired"])
async def test_out_of_band_target_change_is_caught(caught_by: str, tmp_path: Path) -> None:
    corpus = build_corpus(SPEC)
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    image, other = corpus.images[0], corpus.images[1]
    assert (image.repo, other.repo) == (image.repo, image.repo)  # two tags of one repository
    repo = f"{TARGET_NAMESPACE}/{image.repo.rsplit('/', 1)[1]}"
    async with mocks("generic") as m:
        await push_corpus(corpus, m.src.url)
        config_text(m, repos, tmp_path / "cache", config)
        await run_ocync(env, "sync", "-c", str(config), "--json")
        wrong = await overwrite_target_tag(m, repo, image.tag, other.tag)
        assert wrong == other.digest != image.digest
        # verify: cached (the default) trusts its stamp: the change goes unnoticed
        reset(m)
        await run_ocync(env, "sync", "-c", str(config), "--json")
        trusted = await wire_counts(m)
        assert trusted["dst"] == {"ping": 1}, trusted
        assert await target_digest(m, repo, image.tag) == wrong
        args = ["sync", "-c", str(config), "--json"]
        expected = EXPECTED_VERIFIED
        if caught_by == "--verify-targets":
            args.append("--verify-targets")
        elif caught_by == "verify: always":
            config_text(m, repos, tmp_path / "cache", config, dst_extra="verify: always")
        else:
            age_stamp(tmp_path / "cache" / "transfer-cache.json", m.dst.host,
                      f"{repo}:{image.tag}", TTL + 60)
            expected = EXPECTED_EXPIRED
        reset(m)
        out, _ = await run_ocync(env, *args)
        got = await wire_counts(m)
        assert await target_digest(m, repo, image.tag) == image.digest
    assert json.loads(out)["summary"]["images_synced"] == 1
    assert got == expected, explain(f"warm, {caught_by}", got, expected)
