"""What ``ocync sync`` reports, read from the real CLI run as a subprocess against the mock:
the per-image lines, the summary and ``--json`` count the same things with the same words,
blobs moved for referrers of an unchanged image included, and ``--json`` lists the errors
of the images that failed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import (
    OCI_MANIFEST,
    Blob,
    CorpusSpec,
    Manifest,
    build_corpus,
    make_client,
    push_corpus,
)
from tests.integration.referrerseed import artifact, push_referrer

TOKEN = "pat-alice"
LATE_TYPE = "application/vnd.example.signature.late+json"


def write_config(path: Path, src: str, dst: str, cache: Path, pairs: list[tuple[str, str]]) -> None:
    # refresh: always: a warm run lists the referrers of unchanged tags (a late signature)
    maps = "\n".join(f"  - from: {a}\n    to: {b}" for a, b in pairs)
    path.write_text(
        f"global:\n  cache_dir: {cache}\n  max_concurrent_transfers: 4\n"
        f"registries:\n  src:\n    url: {src}\n  dst:\n    url: {dst}\n    profile: ghcr\n"
        f"    credentials: {{username: alice, password: {TOKEN}}}\n"
        f"defaults:\n  source: src\n  targets: dst\n  artifacts: {{refresh: always}}\n"
        f"mappings:\n{maps}\n"
    )


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "ocync", *args], capture_output=True, text=True, timeout=120
        )
    )


def ghcr_target() -> MockOptions:
    return MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                       user_namespaces={"alice": ["mirror"]}, rate_limit="400/2s", seed=2)


async def push_signature(
    url: str, repo: str, subject: Manifest, signer: str
) -> tuple[Blob, Manifest]:
    """An OCI 1.1 signature (``subject`` set) pushed at a source with the referrers API."""
    blobs, manifest = artifact(subject, LATE_TYPE, signer)
    # the generic mock lists it by subject (it answers OCI-Subject)
    assert await push_referrer(url, repo, subject, (blobs, manifest), None, manifest.descriptor())
    return blobs[1], manifest


_LINE = re.compile(r"^synced .* \[(\d+) transferred, (\d+) mounted, (\d+) skipped\]")
_SUMMARY = re.compile(r"blobs: (\d+) transferred, (\d+) mounted, (\d+) skipped;")


def image_counts(stdout: str) -> list[tuple[int, ...]]:
    return [tuple(int(g) for g in m.groups()) for m in map(_LINE.match, stdout.splitlines()) if m]


async def test_per_image_lines_use_the_summary_words_and_add_up(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=41, repositories=2, tags_per_repo=2, shared_base_layers=1))
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src, \
            serve_mock(ghcr_target()) as dst:
        await push_corpus(corpus, src.url)
        repos = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        write_config(cfg, src.host, dst.host, tmp_path / "cache",
                     [(r, "mirror/" + r.split("/", 1)[1]) for r in repos])
        done = await cli("sync", "-c", str(cfg))
        assert done.returncode == 0, done.stdout + done.stderr
        synced = [line for line in done.stdout.splitlines() if line.startswith("synced ")]
        assert len(synced) == len(corpus.images), done.stdout
        # every per-image line in the summary's vocabulary (blobs transferred / mounted /
        # skipped), none in another one
        per_image = image_counts(done.stdout)
        assert len(per_image) == len(synced), done.stdout
        assert not re.search(r"\b(present|copied)\b", done.stdout), done.stdout
        summary = _SUMMARY.search(done.stdout)
        assert summary is not None, done.stdout
        totals = tuple(int(g) for g in summary.groups())
        assert totals == tuple(sum(c[i] for c in per_image) for i in range(3))
        assert totals[0] == len(corpus.blobs) and totals[1] > 0  # shared base layers mounted


async def test_referrer_only_update_counts_its_blobs(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=42, repositories=1, tags_per_repo=2, referrers_per_image=1))
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src, \
            serve_mock(ghcr_target()) as dst:
        await push_corpus(corpus, src.url)
        [repo] = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        write_config(cfg, src.host, dst.host, tmp_path / "cache", [(repo, "mirror/r")])
        cold = await cli("sync", "-c", str(cfg))
        assert cold.returncode == 0, cold.stdout + cold.stderr
        image = corpus.images[0]
        subject = corpus.manifests[image.digest]
        layer, late = await push_signature(src.url, repo, subject, "release-bot")
        dst.reset_stats()
        done = await cli("sync", "-c", str(cfg), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        doc: dict[str, Any] = json.loads(done.stdout)
        uploads = dst.stats()["by_kind"]["upload_put"]
        assert uploads == 1  # the signature's layer (its empty config is there already)
        [entry] = [i for i in doc["images"] if i["referrers"]]
        assert entry["status"] == "synced" and entry["digest"] == image.digest
        assert (entry["blobs_transferred"], entry["bytes"]) == (1, layer.size)
        assert entry["blobs_skipped"] == 1
        summary = doc["summary"]
        assert (summary["blobs_transferred"], summary["bytes"]) == (uploads, layer.size)
        assert summary["images_synced"] == 1
        assert summary["images_skipped"] == len(corpus.images) - 1
        # the same in text, for another signature
        _, late2 = await push_signature(src.url, repo, subject, "security-team")
        text = await cli("sync", "-c", str(cfg))
        assert text.returncode == 0, text.stdout + text.stderr
        assert image_counts(text.stdout) == [(1, 0, 1)], text.stdout
        assert "(+1 referrers)" in text.stdout
        assert "blobs: 1 transferred, 0 mounted, 1 skipped;" in text.stdout, text.stdout
        async with make_client("alice", TOKEN) as http:
            for manifest in (late, late2):
                got = await http.get(f"{dst.url}/v2/mirror/r/manifests/{manifest.digest}",
                                     headers={"Accept": OCI_MANIFEST})
                assert got.status_code == 200 and got.content == manifest.data


async def test_json_errors_list_the_failed_images(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=43, repositories=2, tags_per_repo=1))
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src, \
            serve_mock(ghcr_target()) as dst:
        await push_corpus(corpus, src.url)
        good, bad = sorted(corpus.repos)
        cfg = tmp_path / "ocync.yaml"
        # alice may push under mirror/ only: the second mapping's image fails (403 DENIED)
        write_config(cfg, src.host, dst.host, tmp_path / "cache",
                     [(good, "mirror/good"), (bad, "elsewhere/bad")])
        done = await cli("sync", "-c", str(cfg), "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        doc = json.loads(done.stdout)
        failed = [i for i in doc["images"] if i["status"] == "failed"]
        assert doc["summary"]["images_failed"] == len(failed) == 1
        assert failed[0]["target"].startswith("dst/elsewhere/bad:")
        assert len(doc["errors"]) == 1, doc["errors"]
        [error] = doc["errors"]
        assert error == f"{failed[0]['source']} -> {failed[0]['target']}: {failed[0]['reason']}"
        assert failed[0]["reason"]
        # the same line as on stderr
        assert f"ocync: error: {error}" in done.stderr.splitlines()
        assert TOKEN not in done.stdout + done.stderr
