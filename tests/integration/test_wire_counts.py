"""Exact request counts by kind, at both registries, for fixed workloads of the real CLI.

Each expected dict below is what ocync did when it was written (read from the mocks'
``/_mock/stats``), pinned as a literal so that a refactor of the engine or the client cannot
send more requests without this test saying so. If a change sends FEWER requests, update the
literal in the same commit and say why. Kinds with a zero count are left out of the literals.

Workloads: ``ocync copy`` of one two-platform index that has a referrer, and a cold then a warm
``ocync sync`` of a seeded corpus (3 repositories x 2 tags, two platforms, one referrer per tag),
each from a generic anonymous source mock into (a) a generic anonymous target mock and (b) a
ghcr-profile target mock with token auth (blob GETs redirected to a storage host, mounts only
inside the user's namespace, no referrers API).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from mockregistry import MockOptions, MockRegistry, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus

ROOT = Path(__file__).resolve().parents[2]
USER, TOKEN = "alice", "pat-alice"
TARGET_NAMESPACE = "mirror"
# Bounded waits for the CLI subprocess (a loaded 2-core runner can be slow; none of these is
# a speed assertion).
CLI_TIMEOUT = 300

COPY_SPEC = CorpusSpec(seed=41, repositories=1, tags_per_repo=1, referrers_per_image=1)
SYNC_SPEC = CorpusSpec(
    seed=42, repositories=3, tags_per_repo=2, shared_base_layers=1, layers_per_image=2,
    referrers_per_image=1,
)

Counts = dict[str, dict[str, int]]  # "src" / "dst" -> kind -> requests

# How the numbers arise (today). copy: the index of 2 platforms (3 manifests, 8 blobs) and
# nothing of its referrer (``ocync copy`` copies one tag or digest, not its referrers). It is a
# one-image sync run, so it places blobs as sync does: one HEAD of the destination tag, then
# the generic target probes each blob with a self-mount (202 hands back the upload session:
# no separate HEAD and POST), while the ghcr target lists the new repository's tags once (404:
# a fresh repository, so no blob HEADs) and costs one token and a PATCH per blob (its upload
# strategy). Children are pushed without a HEAD each (the tag HEAD said the image is absent).
# sync: 6 tags, 24 manifests (6 indexes, 12 platform manifests, 6 referrers), 33 unique blobs
# held 39 times across the 3 repositories: 33 uploads and 6 cross-repository mounts. The
# generic target opens every upload with a self-mount probe (202 hands back the upload
# session), hence 39 "mount" requests and no plain upload POST; the ghcr target instead lists
# each new repository's tags once (404: a fresh repository, so no blob HEADs). Neither profile
# declares a referrers API, so each referrer also gets its sha256-<hex> fallback tag: 30
# manifest PUTs = 18 by digest (platform manifests, referrers) + 12 by tag (6 + 6 fallback).
# A warm run asks each source tag's digest (a HEAD) and nothing per tag at the target: the transfer cache records that ocync pushed
# each target tag from that source digest within cache_ttl, so the target's manifest HEADs
# (6 per warm run before the cache kept these stamps, and the ghcr target's 3 tokens for them)
# are gone. What is left at the target is the one /v2/ ping every run opens with. No blob or
# manifest body moves. The referrers of an unchanged tag are listed again only when its target
# is verified (artifacts.refresh: cached, the default: a stamp older than cache_ttl, or verify:
# always); before that default, 6 referrers listings per warm run (refresh: always).

EXPECTED_COPY: dict[str, Counts] = {
    "generic": {
        "src": {"blob_get": 8, "manifest_get": 3},
        "dst": {"manifest_head": 1, "manifest_put": 3, "mount": 8, "upload_put": 8},
    },
    "ghcr": {
        "src": {"blob_get": 8, "manifest_get": 3},
        "dst": {"manifest_head": 2, "manifest_put": 3, "tags_list": 1, "token": 1, "upload_patch": 8, "upload_post": 8, "upload_put": 8},
    },
}
EXPECTED_SYNC_COLD: dict[str, Counts] = {
    "generic": {
        "src": {"blob_get": 33, "manifest_get": 24, "ping": 1, "referrers": 6, "tags_list": 3},
        # tags_list: one per repository, asked before the first write, tells whether the
        # repository is new to this run; only then may the target's tag-schema referrers index
        # be written without reading it first (entries added at the mirror are kept).
        "dst": {"manifest_head": 6, "manifest_put": 30, "mount": 39, "ping": 1, "tags_list": 3, "upload_put": 33},
    },
    "ghcr": {
        "src": {"blob_get": 33, "manifest_get": 24, "ping": 1, "referrers": 6, "tags_list": 3},
        # token: the run announces its 3 target repositories and the ghcr profile grants
        # multi-scope tokens, so one pull,push token holds all 3, and every mount (push on the
        # target, pull on another target repository) is covered by it. Before, one token per
        # target repository plus one per distinct (mount target, mount source) pair: 5 to 9.
        "dst": {"manifest_head": 6, "manifest_put": 30, "mount": 6, "ping": 1, "tags_list": 3, "token": 1, "upload_patch": 33, "upload_post": 33, "upload_put": 33},
    },
}
# Counts that legitimately vary from run to run: kind -> the most it may be (none today).
EXPECTED_SYNC_COLD_AT_MOST: dict[str, Counts] = {
    "generic": {"src": {}, "dst": {}},
    "ghcr": {"src": {}, "dst": {}},
}
EXPECTED_SYNC_WARM: dict[str, Counts] = {
    "generic": {
        "src": {"manifest_head": 6, "ping": 1, "tags_list": 3},
        "dst": {"ping": 1},
    },
    "ghcr": {
        "src": {"manifest_head": 6, "ping": 1, "tags_list": 3},
        "dst": {"ping": 1},
    },
}


@dataclass
class Mocks:
    src: MockRegistry
    dst: MockRegistry
    profile: str


@asynccontextmanager
async def mocks(profile: str) -> AsyncIterator[Mocks]:
    if profile == "ghcr":
        dst_options = MockOptions(
            profile="ghcr", auth="token", users={USER: TOKEN},
            user_namespaces={USER: [TARGET_NAMESPACE]}, seed=2,
        )
    else:
        dst_options = MockOptions(profile="generic", seed=2)
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src, serve_mock(dst_options) as dst:
        yield Mocks(src, dst, profile)


async def wire_counts(m: Mocks) -> Counts:
    """Non-zero request counts by kind from each mock's ``GET /_mock/stats``."""
    out: Counts = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for side, mock in (("src", m.src), ("dst", m.dst)):
            response = await http.get(f"{mock.url}/_mock/stats")
            response.raise_for_status()
            by_kind: dict[str, int] = response.json()["by_kind"]
            out[side] = {kind: n for kind, n in by_kind.items() if n}
    return out


def reset(m: Mocks) -> None:
    m.src.reset_stats()
    m.dst.reset_stats()


def hermetic_env(tmp_path: Path) -> dict[str, str]:
    """No docker config or cache of the machine's user leaks into the run."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / ".docker"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "NO_COLOR": "1",
    }


async def run_ocync(env: dict[str, str], *args: str) -> tuple[str, str]:
    with trio.fail_after(CLI_TIMEOUT):
        result = await trio.run_process(
            [sys.executable, "-m", "ocync", *args],
            capture_stdout=True, capture_stderr=True, check=False, env=env, cwd=ROOT,
        )
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, f"ocync {' '.join(args)} exited {result.returncode}:\n{err}"
    return out, err


def write_sync_config(path: Path, m: Mocks, repos: list[str], cache: Path) -> None:
    lines = [
        "global:",
        f"  cache_dir: {cache}",
        "registries:",
        "  src:",
        f"    url: {m.src.host}",
        "  dst:",
        f"    url: {m.dst.host}",
        f"    profile: {m.profile}",
    ]
    if m.profile == "ghcr":
        lines.append(f"    credentials: {{username: {USER}, password: {TOKEN}}}")
    else:
        lines.append("    auth_type: anonymous")
    lines += ["defaults:", "  source: src", "  targets: dst", "mappings:"]
    lines += [f"  - {{from: {r}, to: {TARGET_NAMESPACE}/{r.rsplit('/', 1)[1]}}}" for r in repos]
    path.write_text("\n".join(lines) + "\n")


def split_varying(got: Counts, at_most: Counts) -> tuple[Counts, Counts]:
    """``got`` without the kinds that may vary, and those kinds' counts."""
    exact = {side: {k: n for k, n in kinds.items() if k not in at_most[side]} for side, kinds in got.items()}
    varying = {side: {k: got[side].get(k, 0) for k in at_most[side]} for side in got}
    return exact, varying


def explain(phase: str, got: Counts, expected: Counts) -> str:
    diff = {
        side: {
            kind: (expected[side].get(kind, 0), got[side].get(kind, 0))
            for kind in sorted(set(expected[side]) | set(got[side]))
            if expected[side].get(kind, 0) != got[side].get(kind, 0)
        }
        for side in ("src", "dst")
    }
    return f"{phase}: request counts changed (kind: (expected, got)): {diff}\nall counts: {got}"


@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_copy_of_a_multi_arch_image_with_a_referrer(profile: str, tmp_path: Path) -> None:
    corpus = build_corpus(COPY_SPEC)
    [image] = corpus.images
    assert len(image.manifests) == 3  # an index of two platforms
    assert len(image.blobs) == 10  # 8 under the index, 2 of the referrer
    assert len(image.referrers) == 1
    env = hermetic_env(tmp_path)
    async with mocks(profile) as m:
        await push_corpus(corpus, m.src.url)
        args = ["copy", f"{m.src.host}/{image.repo}:{image.tag}",
                f"{m.dst.host}/{TARGET_NAMESPACE}/app", "--dst-profile", profile, "--json"]
        if profile == "ghcr":
            authfile = tmp_path / "config.json"
            entry = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
            authfile.write_text(json.dumps({"auths": {m.dst.host: {"auth": entry}}}))
            args += ["--authfile", str(authfile)]
        reset(m)
        out, _ = await run_ocync(env, *args)
        got = await wire_counts(m)
    assert json.loads(out)["digest"] == image.digest
    assert got == EXPECTED_COPY[profile], explain("copy", got, EXPECTED_COPY[profile])


@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_cold_then_warm_sync_of_a_seeded_corpus(profile: str, tmp_path: Path) -> None:
    corpus = build_corpus(SYNC_SPEC)
    repos = sorted(corpus.repos)
    assert (len(corpus.images), len(corpus.manifests), len(corpus.blobs)) == (6, 24, 33)
    assert sum(len(corpus.repo_blobs(r)) for r in repos) == 39
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    async with mocks(profile) as m:
        await push_corpus(corpus, m.src.url)
        write_sync_config(config, m, repos, tmp_path / "cache")
        reset(m)
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        cold = await wire_counts(m)
        report: dict[str, Any] = json.loads(out)
        reset(m)
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        warm = await wire_counts(m)
        warm_report: dict[str, Any] = json.loads(out)
    assert report["summary"]["images_synced"] == len(corpus.images), report["summary"]
    assert warm_report["summary"]["images_skipped"] == len(corpus.images), warm_report["summary"]
    exact, varying = split_varying(cold, EXPECTED_SYNC_COLD_AT_MOST[profile])
    assert exact == EXPECTED_SYNC_COLD[profile], explain("cold sync", cold, EXPECTED_SYNC_COLD[profile])
    for side, bounds in EXPECTED_SYNC_COLD_AT_MOST[profile].items():
        for kind, most in bounds.items():
            assert varying[side][kind] <= most, f"cold sync: {side} {kind} {varying[side][kind]} > {most}: {cold}"
    assert warm == EXPECTED_SYNC_WARM[profile], explain("warm sync", warm, EXPECTED_SYNC_WARM[profile])
