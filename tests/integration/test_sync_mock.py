"""``ocync sync`` end to end on loopback: a source mock seeded with a corpus, a ghcr-profile
target mock (token auth, rate cap, blob redirects, mounts only inside a namespace).

Checks the sync engine's acceptance points that need real sockets: bit-for-bit copies, every
blob present, each source blob fetched once, zero 429s, shared base layers uploaded once and
mounted elsewhere, a warm second run that moves no blob, and the CLI's exit codes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import ArtifactPolicy, MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus, RunReport
from ocync.engine.staging import BlobStage
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    Blob,
    CorpusSpec,
    Manifest,
    build_corpus,
    make_client,
    push_corpus,
    referrers_tag,
    verify_corpus,
)
from tests.integration.referrerseed import artifact, push_referrer

TOKEN = "pat-alice"


@dataclass
class Pair:
    src: Any
    dst: Any


@contextlib.asynccontextmanager
async def mock_pair(
    *, dst_profile: str = "ghcr", rate: str = "400/2s", **faults: float
) -> AsyncIterator[Pair]:
    src_opts = MockOptions(profile="generic", seed=1, **faults)
    dst_opts = MockOptions(
        profile=dst_profile,
        auth="token",
        users={"alice": TOKEN},
        user_namespaces={"alice": ["mirror", "other"]},
        rate_limit=rate,
        seed=2,
        **faults,
    )
    async with serve_mock(src_opts) as src, serve_mock(dst_opts) as dst:
        yield Pair(src, dst)


async def engine_sync(
    src_url: str,
    dst_url: str,
    mappings: list[MappingSpec],
    *,
    cache: TransferCache,
    dst_profile: str = "ghcr",
    src_profile: str = "generic",
    stage_dir: Path | None = None,
    concurrency: int = 4,
) -> RunReport:
    controllers = ControllerRegistry()
    src_settings = ClientSettings(auth=AuthSettings(kind="anonymous"), profile=src_profile)
    dst_settings = ClientSettings(
        auth=AuthSettings(kind="basic", username="alice", password=TOKEN), profile=dst_profile
    )
    async with (
        RegistryClient(src_url, src_settings, controllers=controllers) as sc,
        RegistryClient(dst_url, dst_settings, controllers=controllers) as dc,
    ):
        src = ClientEndpoint("src", sc)
        dst = ClientEndpoint("dst", dc)
        await src.prepare()
        await dst.prepare()
        engine = SyncEngine(
            mappings,
            {"src": src},
            {"dst": dst},
            cache,
            EngineOptions(max_concurrent_transfers=concurrency),
            stage=BlobStage(stage_dir, size_limit=None) if stage_dir else None,
        )
        return await engine.run()


def corpus_mappings(repos: list[str], ns: str = "mirror") -> list[MappingSpec]:
    return [
        MappingSpec(
            name=repo,
            source="src",
            source_repo=repo,
            targets=(TargetRepo("dst", f"{ns}/{repo.split('/', 1)[1]}"),),
        )
        for repo in repos
    ]


async def test_cold_warm_bit_for_bit_ghcr_target() -> None:
    spec = CorpusSpec(
        seed=7, repositories=3, tags_per_repo=2, shared_base_layers=2, layers_per_image=3,
        referrers_per_image=1,
    )
    corpus = build_corpus(spec)
    async with mock_pair() as pair:
        await push_corpus(corpus, pair.src.url)
        pair.src.reset_stats()
        repos = sorted(corpus.repos)
        maps = corpus_mappings(repos)
        cache = TransferCache()
        report = await engine_sync(pair.src.url, pair.dst.url, maps, cache=cache)
        assert report.count(ImageStatus.FAILED) == 0, report.describe()
        assert report.count(ImageStatus.SYNCED) == len(corpus.images)
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in repos}
        problems = await verify_corpus(
            corpus, pair.dst.url, username="alice", password=TOKEN, repo_map=repo_map
        )
        assert problems == []
        src_stats, dst_stats = pair.src.stats(), pair.dst.stats()
        # each unique source blob fetched exactly once (no faults here)
        assert src_stats["by_kind"]["blob_get"] == len(corpus.blobs)
        assert dst_stats["throttled"] == 0 and src_stats["throttled"] == 0
        assert dst_stats["auth_leaks"] == 0
        # wire counts: every blob uploaded exactly once (one PATCH each on the ghcr profile),
        # every other repository holding it got it by a mount, and no mount was wasted
        per_repo = sum(len(corpus.repo_blobs(r)) for r in repos)
        assert dst_stats["by_kind"]["upload_patch"] == len(corpus.blobs) == report.blobs_transferred
        assert report.blobs_mounted == per_repo - len(corpus.blobs) > 0
        assert dst_stats["by_kind"]["mount"] == report.blobs_mounted
        # warm run: nothing transferred, <= 2 requests per tag (+ one tag list per repo)
        pair.src.reset_stats()
        pair.dst.reset_stats()
        warm = await engine_sync(pair.src.url, pair.dst.url, maps, cache=cache)
        assert warm.count(ImageStatus.SKIPPED) == len(corpus.images), warm.describe()
        assert warm.blobs_transferred == 0
        s, d = pair.src.stats(), pair.dst.stats()
        wire = s["requests_total"] + d["requests_total"]
        wire -= s["by_kind"]["tags_list"] + s["by_kind"]["token"] + d["by_kind"]["token"]
        wire -= s["by_kind"]["ping"] + d["by_kind"]["ping"]
        # artifacts.refresh: cached (default): no referrers listing for the tags the cache
        # vouches for (refresh: always would list one per tag); the target is not asked about
        # the tags either: the stamps vouch for them (pushed from the same source digest)
        assert s["by_kind"]["referrers"] == 0
        assert d["by_kind"].get("manifest_head", 0) == 0
        wire -= s["by_kind"]["referrers"]
        assert wire <= 2 * len(corpus.images), ({k: v for k, v in s["by_kind"].items() if v}, {k: v for k, v in d["by_kind"].items() if v}, d["by_status"])


async def test_platform_filter_and_multi_target_staging(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=3, repositories=1, tags_per_repo=2))
    async with (
        serve_mock(MockOptions(profile="generic", seed=1)) as src,
        serve_mock(MockOptions(profile="generic", seed=2)) as t1,
        serve_mock(MockOptions(profile="generic", seed=3)) as t2,
    ):
        await push_corpus(corpus, src.url)
        src.reset_stats()
        [repo] = list(corpus.repos)
        controllers = ControllerRegistry()
        settings = ClientSettings(auth=AuthSettings(kind="anonymous"), profile="generic")
        async with (
            RegistryClient(src.url, settings, controllers=controllers) as sc,
            RegistryClient(t1.url, settings, controllers=controllers) as c1,
            RegistryClient(t2.url, settings, controllers=controllers) as c2,
        ):
            eps = {"src": ClientEndpoint("src", sc), "t1": ClientEndpoint("t1", c1), "t2": ClientEndpoint("t2", c2)}
            m = MappingSpec(
                name="m", source="src", source_repo=repo,
                targets=(TargetRepo("t1", repo), TargetRepo("t2", "copy/x")),
            )
            stage = BlobStage(tmp_path / "stage", size_limit=None)
            engine = SyncEngine([m], {"src": eps["src"]}, {"t1": eps["t1"], "t2": eps["t2"]},
                                TransferCache(), EngineOptions(), stage=stage)
            report = await engine.run()
            assert report.count(ImageStatus.SYNCED) == 4, report.describe()
            # two target registries, one pull per blob
            assert src.stats()["by_kind"]["blob_get"] == len(corpus.blobs)
            assert stage.statistics().staged_blobs == len(corpus.blobs)
            stage.cleanup()
        assert await verify_corpus(corpus, t1.url) == []
        assert await verify_corpus(corpus, t2.url, repo_map={repo: "copy/x"}) == []


def _write_config(path: Path, src: str, dst: str, cache: Path, repos: list[str], extra: str = "") -> None:
    maps = "\n".join(f"  - from: {r}\n    to: mirror/{r.split('/', 1)[1]}" for r in repos)
    path.write_text(
        f"global:\n  cache_dir: {cache}\n  max_concurrent_transfers: 4\n"
        f"registries:\n  src:\n    url: {src}\n  dst:\n    url: {dst}\n"
        f"    credentials: {{username: alice, password: {TOKEN}}}\n{extra}"
        f"defaults:\n  source: src\n  targets: dst\n"
        f"mappings:\n{maps}\n"
    )


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "ocync", *args], capture_output=True, text=True, timeout=120
        )
    )


async def test_cli_sync_json_dry_run_and_exit_codes(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=11, repositories=2, tags_per_repo=2, referrers_per_image=1))
    async with mock_pair(dst_profile="generic") as pair:
        await push_corpus(corpus, pair.src.url)
        cfg = tmp_path / "ocync.yaml"
        repos = sorted(corpus.repos)
        _write_config(cfg, pair.src.host, pair.dst.host, tmp_path / "cache", repos)
        dry = await _cli("sync", "-c", str(cfg), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would copy" in dry.stdout
        assert pair.dst.stats()["by_kind"]["manifest_put"] == 0
        done = await _cli("sync", "-c", str(cfg), "--json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["summary"]["images_synced"] == len(corpus.images)
        assert TOKEN not in done.stdout and TOKEN not in done.stderr
        assert (tmp_path / "cache" / "transfer-cache.json").is_file()
        warm = await _cli("sync", "-c", str(cfg))
        assert warm.returncode == 0, warm.stderr
        assert f"images: 0 synced, {len(corpus.images)} skipped, 0 failed" in warm.stdout
        # wrong credentials -> every image fails on auth -> exit 4, one line, no traceback
        bad = tmp_path / "bad.yaml"
        _write_config(bad, pair.src.host, pair.dst.host, tmp_path / "cache2", repos)
        bad.write_text(bad.read_text().replace(TOKEN, "wrong-token"))
        failed = await _cli("sync", "-c", str(bad), "--no-cache")
        assert failed.returncode == 4, failed.stdout + failed.stderr
        assert "Traceback" not in failed.stderr
        assert "wrong-token" not in failed.stdout + failed.stderr
        # invalid config -> 3
        (tmp_path / "invalid.yaml").write_text("mappings: 3\n")
        invalid = await _cli("sync", "-c", str(tmp_path / "invalid.yaml"))
        assert invalid.returncode == 3


@pytest.mark.parametrize("seed", [5, 6])
async def test_faults_converge(seed: int, tmp_path: Path) -> None:
    """~5% server errors, connection resets and truncated bodies on BOTH sides: the sync
    converges (within a few runs) to the same end state as a clean one."""
    corpus = build_corpus(CorpusSpec(seed=seed, repositories=2, tags_per_repo=2, shared_base_layers=1,
                                     referrers_per_image=1))
    storage = tmp_path / "source-store"
    async with serve_mock(MockOptions(profile="generic", seed=seed, storage_dir=storage)) as clean:
        await push_corpus(corpus, clean.url)  # seeded cleanly, then served again with faults
    faults = dict(fault_rate=0.05, reset_rate=0.03, truncate_rate=0.03)
    async with (
        serve_mock(MockOptions(profile="generic", seed=seed, storage_dir=storage, **faults)) as src,
        serve_mock(
            MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                        user_namespaces={"alice": ["mirror"]}, rate_limit="400/2s",
                        seed=seed + 1, **faults)
        ) as dst,
    ):
        repos = sorted(corpus.repos)
        maps = corpus_mappings(repos)
        cache = TransferCache()
        for _ in range(3):
            report = await engine_sync(src.url, dst.url, maps, cache=cache)
            if report.count(ImageStatus.FAILED) == 0 and not report.errors:
                break
        assert report.count(ImageStatus.FAILED) == 0, f"seed {seed}: " + report.describe()
        injected = sum(
            m.stats()["by_status"].get(code, 0) for m in (src, dst) for code in ("500", "502", "503")
        )
        assert injected > 0, "no fault was injected: the test would prove nothing"
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in repos}
        store = dst.store
        for image in corpus.images:
            repo = repo_map[image.repo]
            record = store.resolve(repo, image.tag)
            assert record is not None and record.digest == image.digest, f"seed {seed}"
            assert store.read_content(image.digest) == corpus.manifests[image.digest].data
            for b in image.blobs:
                assert store.has_blob(repo, b), f"seed {seed}: {repo} lacks {b[:19]}"
            for ref in image.referrers:
                assert store.resolve(repo, ref) is not None


async def test_cli_auth_check(tmp_path: Path) -> None:
    async with mock_pair() as pair:
        # the target repository's namespace must exist for a push check: alice owns mirror/
        cfg = tmp_path / "ok.yaml"
        _write_config(cfg, pair.src.host, pair.dst.host, tmp_path / "c", ["corpus/repo0"])
        good = await _cli("auth", "check", "-c", str(cfg))
        assert good.returncode == 0, good.stdout + good.stderr
        assert "ok      dst/mirror/repo0 (push) as user:alice" in good.stdout
        bad = tmp_path / "bad.yaml"
        bad.write_text(cfg.read_text().replace(TOKEN, "nope-token"))
        failed = await _cli("auth", "check", "-c", str(bad), "--json")
        assert failed.returncode == 4, failed.stdout + failed.stderr
        doc = json.loads(failed.stdout)
        assert [c["access"] for c in doc["checks"] if not c["ok"]] == ["push"]
        assert "nope-token" not in failed.stdout + failed.stderr
        assert pair.dst.stats()["by_kind"]["manifest_put"] == 0  # nothing written


async def test_cli_analyze_predicts_cold_sync(tmp_path: Path) -> None:
    spec = CorpusSpec(seed=13, repositories=3, tags_per_repo=2, shared_base_layers=2)
    corpus = build_corpus(spec)
    async with mock_pair(dst_profile="generic") as pair:
        await push_corpus(corpus, pair.src.url)
        cfg = tmp_path / "ocync.yaml"
        _write_config(cfg, pair.src.host, pair.dst.host, tmp_path / "cache", sorted(corpus.repos))
        out = await _cli("analyze", "-c", str(cfg), "--json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["tags"] == len(corpus.images)
        assert doc["unique_blobs"] == len(corpus.blobs)
        assert doc["unique_bytes"] == corpus.blob_bytes
        [target] = doc["targets"]
        # generic profile: mounts across the whole registry -> one upload per unique blob
        assert target["uploads"] == len(corpus.blobs)
        per_repo = sum(len(corpus.repo_blobs(r)) for r in corpus.repos)
        assert target["mounts"] == per_repo - len(corpus.blobs)
        assert doc["shared_layers"] and doc["shared_layers"][0]["images"] == len(corpus.images)
        assert pair.dst.stats()["by_kind"]["manifest_put"] == 0
        # the cold sync then does what analyze predicted
        done = await _cli("sync", "-c", str(cfg), "--json")
        summary = json.loads(done.stdout)["summary"]
        assert summary["blobs_transferred"] == target["uploads"]
        assert summary["blobs_mounted"] == target["mounts"]


async def test_cli_watch_runs_repeatedly(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=17, repositories=1, tags_per_repo=1))
    async with mock_pair(dst_profile="generic") as pair:
        await push_corpus(corpus, pair.src.url)
        cfg = tmp_path / "ocync.yaml"
        _write_config(cfg, pair.src.host, pair.dst.host, tmp_path / "cache", sorted(corpus.repos))
        out = await _cli("watch", "-c", str(cfg), "--interval", "0.1", "--max-runs", "2")
        assert out.returncode == 0, out.stderr
        summaries = [ln for ln in out.stdout.splitlines() if ln.startswith("images: ")]
        assert summaries[0].startswith("images: 1 synced")
        assert summaries[1].startswith("images: 0 synced, 1 skipped")


async def test_cli_unreachable_registry_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    cfg = tmp_path / "ocync.yaml"
    _write_config(cfg, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}", tmp_path / "c", ["a/b"])
    out = await _cli("sync", "-c", str(cfg))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(("ocync: error: registry src: 127.0.0.1:", "ocync: error: registry dst: 127.0.0.1:"))
    # --json still prints a JSON document on stdout
    out = await _cli("sync", "-c", str(cfg), "--json")
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and doc["errors"]


async def test_ghcr_cross_namespace_uploads_per_namespace_pulls_once(tmp_path: Path) -> None:
    """GHCR mounts only inside one namespace: the same repositories mirrored into two orgs
    upload each blob once per org, never try a cross-org mount, and pull each blob from the
    source once (staged between the two uploads)."""
    corpus = build_corpus(CorpusSpec(seed=19, repositories=2, tags_per_repo=1, shared_base_layers=1))
    async with mock_pair() as pair:
        await push_corpus(corpus, pair.src.url)
        pair.src.reset_stats()
        repos = sorted(corpus.repos)
        maps = corpus_mappings(repos, "mirror") + [
            MappingSpec(name=f"{r} other", source="src", source_repo=r,
                        targets=(TargetRepo("dst", f"other/{r.split('/', 1)[1]}"),))
            for r in repos
        ]
        report = await engine_sync(pair.src.url, pair.dst.url, maps, cache=TransferCache(),
                                   stage_dir=tmp_path / "stage")
        assert report.count(ImageStatus.FAILED) == 0, report.describe()
        for ns in ("mirror", "other"):
            repo_map = {r: f"{ns}/{r.split('/', 1)[1]}" for r in repos}
            assert await verify_corpus(corpus, pair.dst.url, username="alice", password=TOKEN,
                                       repo_map=repo_map) == []
        dst = pair.dst.stats()["by_kind"]
        assert dst["upload_patch"] == 2 * len(corpus.blobs)  # once per namespace
        per_repo = sum(len(corpus.repo_blobs(r)) for r in repos)
        assert dst["mount"] == 2 * (per_repo - len(corpus.blobs))  # only inside a namespace
        assert pair.src.stats()["by_kind"]["blob_get"] == len(corpus.blobs)  # pulled once


# ---- artifacts.refresh: referrers added at the source after the image was mirrored --------

LATE_TYPE = "application/vnd.example.signature.late+json"


def late_signature(subject: Manifest) -> tuple[list[Blob], Manifest]:
    """A signature artifact (OCI 1.1 image manifest with ``subject``) made after the fact."""
    return artifact(subject, LATE_TYPE, "release-bot")


async def push_late_signature(url: str, repo: str, subject: Manifest) -> Manifest:
    """Push it like a signer would (tests/integration/referrerseed.py)."""
    late = late_signature(subject)
    await push_referrer(url, repo, subject, late, None, late[1].descriptor())
    return late[1]


def _kinds(stats: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in stats["by_kind"].items() if v}


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(keys) if after.get(k, 0) != before.get(k, 0)}


@pytest.mark.parametrize(
    ("src_profile", "refresh", "exclude"),
    [
        pytest.param("generic", "always", (), id="api-always"),
        pytest.param("ghcr", "always", (), id="tag-fallback-always"),
        pytest.param("generic", "on_change", (), id="api-on_change"),
        pytest.param("ghcr", "on_change", (), id="tag-fallback-on_change"),
        pytest.param("generic", "always", (LATE_TYPE,), id="api-always-excluded"),
    ],
)
async def test_late_referrer_reaches_unchanged_image(
    src_profile: str, refresh: str, exclude: tuple[str, ...]
) -> None:
    corpus = build_corpus(
        CorpusSpec(seed=13, repositories=2, tags_per_repo=2, referrers_per_image=1)
    )
    src_opts = MockOptions(profile=src_profile, seed=1)
    dst_opts = MockOptions(
        profile="ghcr", auth="token", users={"alice": TOKEN},
        user_namespaces={"alice": ["mirror"]}, rate_limit="400/2s", seed=2,
    )
    async with serve_mock(src_opts) as src, serve_mock(dst_opts) as dst:
        await push_corpus(corpus, src.url)
        repos = sorted(corpus.repos)
        policy = ArtifactPolicy(refresh=refresh, exclude=exclude)
        maps = [
            MappingSpec(name=m.name, source=m.source, source_repo=m.source_repo,
                        targets=m.targets, artifacts=policy)
            for m in corpus_mappings(repos)
        ]
        cache = TransferCache()

        async def sync() -> tuple[RunReport, dict[str, int], dict[str, int]]:
            src.reset_stats()
            dst.reset_stats()
            report = await engine_sync(
                src.url, dst.url, maps, cache=cache, src_profile=src_profile
            )
            assert report.count(ImageStatus.FAILED) == 0, report.describe()
            return report, _kinds(src.stats()), _kinds(dst.stats())

        cold, _, _ = await sync()
        assert cold.count(ImageStatus.SYNCED) == len(corpus.images)
        _, src0, dst0 = await sync()  # warm, nothing new
        images = len(corpus.images)
        if refresh == "on_change":
            # zero referrer requests on a warm run: neither the API nor a fallback tag
            assert "referrers" not in src0 and src0.get("manifest_get", 0) == 0
        elif src_profile == "generic":
            assert src0.get("referrers") == images  # one listing per unchanged tag
        else:
            # no referrers API (ghcr profile: not even asked): each subject's fallback tag,
            # seen in the tag listing, is read instead
            assert "referrers" not in src0 and src0.get("manifest_get") == images
        assert "referrers" not in dst0  # the target is never asked about referrers

        subject_image = corpus.images[0]
        subject = corpus.manifests[subject_image.digest]
        late = await push_late_signature(src.url, subject_image.repo, subject)
        report, src1, dst1 = await sync()
        target_repo = "mirror/" + subject_image.repo.split("/", 1)[1]
        async with make_client("alice", TOKEN) as http:
            got = await http.get(
                f"{dst.url}/v2/{target_repo}/manifests/{late.digest}",
                headers={"Accept": MANIFEST_ACCEPT},
            )
            index = await http.get(
                f"{dst.url}/v2/{target_repo}/manifests/{referrers_tag(subject.digest)}",
                headers={"Accept": OCI_INDEX},
            )
            layer = await http.get(f"{dst.url}/v2/{target_repo}/blobs/{late.blobs[1]}")
        extra_src, extra_dst = _minus(src1, src0), _minus(dst1, dst0)
        if refresh == "on_change" or exclude:
            assert got.status_code == 404
            assert late.digest not in index.text
            assert (extra_src, extra_dst) == ({}, {})  # the warm run costs exactly as before
            assert report.count(ImageStatus.SKIPPED) == images
            return
        # always: the signature arrives bit for bit, its blob too, and the target's
        # tag-schema index (the ghcr profile has no referrers API) lists it
        assert got.status_code == 200 and got.content == late.data
        assert layer.status_code == 200 and layer.content == late_signature(subject)[0][1].data
        assert late.digest in {d["digest"] for d in index.json()["manifests"]}
        [result] = [r for r in report.results if r.referrers]
        assert result.status is ImageStatus.SYNCED and result.referrers == 1
        assert result.digest == subject_image.digest
        assert report.count(ImageStatus.SKIPPED) == images - 1
        # the extra requests, by kind: the new manifest and its one new blob from the source
        # (the empty config blob is known to be in the target repository already) ...
        blob_fetch = {"blob_get": 1} if src_profile == "generic" else {"blob_get": 1, "storage_get": 1}
        assert extra_src == {"manifest_get": 1, **blob_fetch}, (extra_src, src1)
        # ... and at the target: a HEAD for the referrer the cache had not seen, the blob
        # HEAD then the ghcr upload (POST, PATCH, PUT), the manifest and the fallback index
        # (read first: it is merged with what the target lists, never overwritten). The warm
        # baseline asks the target nothing (no token), so this push also pays its tokens.
        assert extra_dst == {
            "token": 2, "manifest_head": 1, "blob_head": 1, "upload_post": 1, "upload_patch": 1,
            "upload_put": 1, "manifest_get": 1, "manifest_put": 2,
        }, (extra_dst, dst1)
        # next warm run: back to the baseline, the cache knows the referrer is there
        _, src2, dst2 = await sync()
        assert (_minus(src2, src0), _minus(dst2, dst0)) == ({}, {})


async def test_cli_sync_discards_a_garbage_cache_file(tmp_path: Path) -> None:
    """A cache file of non-UTF-8 bytes (a crash mid-write on another filesystem, a stray
    binary) is discarded with a warning: the sync still runs, exit 0, --json intact."""
    corpus = build_corpus(CorpusSpec(seed=19, repositories=1, tags_per_repo=1))
    async with mock_pair(dst_profile="generic") as pair:
        await push_corpus(corpus, pair.src.url)
        cfg = tmp_path / "ocync.yaml"
        cache_dir = tmp_path / "cache"
        cache_dir.mkdir()
        garbage = b"\xff\xfe\x00\x80 not a cache \xc3\x28" + bytes(range(256))
        (cache_dir / "transfer-cache.json").write_bytes(garbage)
        _write_config(cfg, pair.src.host, pair.dst.host, cache_dir, sorted(corpus.repos))
        done = await _cli("sync", "-c", str(cfg), "--json")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert "transfer-cache.json is corrupt" in done.stderr and "discarding it" in done.stderr
        assert json.loads(done.stdout)["summary"]["images_synced"] == len(corpus.images)
        # the run replaced it with a good one: the next run trusts it without a warning
        assert (cache_dir / "transfer-cache.json").read_bytes() != garbage
        warm = await _cli("sync", "-c", str(cfg))
        assert warm.returncode == 0 and "corrupt" not in warm.stderr, warm.stderr
        # watch loads the same file before each run
        (cache_dir / "transfer-cache.json").write_bytes(garbage)
        watched = await _cli("watch", "-c", str(cfg), "--interval", "0.1", "--max-runs", "1")
        assert watched.returncode == 0, watched.stderr
        assert "transfer-cache.json is corrupt" in watched.stderr and "Traceback" not in watched.stderr


@pytest.mark.slow
async def test_announced_cap_lower_than_the_ghcr_profile_is_learned(tmp_path: Path) -> None:
    """A target with `profile: ghcr` and no rate_limit whose 429s say "allowed: 100/10s":
    the profile's documented 2000/60s yields to the announcement after the first 429(s), so
    the 429s stop instead of recurring every window for the whole run."""
    corpus = build_corpus(
        CorpusSpec(seed=23, repositories=6, tags_per_repo=4, platforms=("linux/amd64",),
                   layers_per_image=3, shared_base_layers=0)
    )
    async with mock_pair(dst_profile="ghcr", rate="100/10s") as pair:
        await push_corpus(corpus, pair.src.url)
        cfg = tmp_path / "ocync.yaml"
        _write_config(cfg, pair.src.host, pair.dst.host, tmp_path / "cache", sorted(corpus.repos))
        text = cfg.read_text()
        assert "    profile: ghcr\n" not in text
        cfg.write_text(text.replace(f"    url: {pair.dst.host}\n", f"    url: {pair.dst.host}\n    profile: ghcr\n"))
        done = await _cli("sync", "-c", str(cfg), "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["summary"]["images_synced"] == len(corpus.images)
        async with httpx.AsyncClient(base_url=pair.dst.url) as client:
            stats = (await client.get("/_mock/stats")).json()
    requests, throttled = stats["requests_total"], stats["by_status"].get("429", 0)
    assert requests >= 300 and throttled >= 1, f"too small a run to tell ({requests} requests)"
    first = next(s["t"] for s in stats["timeline"] if s["throttled"])
    # Without the announced cap, the documented 2000/60s bursts into every later 10 s window.
    later = sum(s["throttled"] for s in stats["timeline"] if s["t"] > first + 10)
    assert throttled <= 5 and later == 0, f"{throttled} 429s in {requests} requests: {stats['timeline']}"


async def test_cli_dry_run_output_is_deterministic(tmp_path: Path) -> None:
    """Mappings and tags are discovered concurrently, but the dry run reports them in config
    order and each mapping's tags in its selection order: two runs print the same plan."""
    corpus = build_corpus(CorpusSpec(seed=29, repositories=4, tags_per_repo=4, platforms=("linux/amd64",)))
    async with mock_pair(dst_profile="generic") as pair:
        await push_corpus(corpus, pair.src.url)
        cfg = tmp_path / "ocync.yaml"
        repos = sorted(corpus.repos, reverse=True)  # config order is not alphabetical
        _write_config(cfg, pair.src.host, pair.dst.host, tmp_path / "cache", repos)
        outputs, plans = [], []
        for _ in range(3):
            dry = await _cli("sync", "-c", str(cfg), "--dry-run")
            assert dry.returncode == 0, dry.stderr
            # the last line holds the run's elapsed time
            outputs.append(dry.stdout.rstrip("\n").rsplit("\n", 1)[0])
            doc = await _cli("sync", "-c", str(cfg), "--dry-run", "--json")
            assert doc.returncode == 0, doc.stderr
            plans.append(json.loads(doc.stdout)["plan"]["mappings"])
        assert outputs[0] == outputs[1] == outputs[2], "\n---\n".join(outputs)
        assert plans[0] == plans[1] == plans[2]
        assert [m["mapping"].split()[0] for m in plans[0]] == [f"mappings[{i}]" for i in range(len(repos))]
        for m in plans[0]:
            assert [w["tag"] for w in m["would_copy"]] == m["selected"] and len(m["selected"]) == 4
