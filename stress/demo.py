"""`make demo`: a real `ocync sync -c examples/demo.yaml` between two mock registries.

A source mock (generic profile) is seeded with a sample corpus (4 repositories x 3 tags,
multi-arch indexes, shared base layers, one signature or SBOM per image); a target mock
behaves like ghcr.io (token auth, a 600/6s rate cap, blob redirects to a storage host,
mounts only inside the owner's namespace, no referrers API). ocync mirrors the source into
it, prints its report, then runs again to show that a warm run moves nothing. Both mocks
run as subprocesses; the whole demo takes a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from stress.mockproc import MockProcess

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "demo.yaml"
TOKEN = "demo-pat-0123456789"
CAP = "600/6s"
SPEC = CorpusSpec(
    seed=2024,
    repositories=4,
    namespace="corpus",
    tags_per_repo=3,
    layers_per_image=3,
    layer_size=(32 * 1024, 512 * 1024),
    shared_base_layers=2,
    referrers_per_image=1,
)


def _host(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


def _kinds(stats: dict[str, Any]) -> str:
    by_kind = stats.get("by_kind", {})
    return ", ".join(f"{k} {v}" for k, v in by_kind.items() if v)


def _run_sync(env: dict[str, str], *extra: str) -> int:
    cmd = [sys.executable, "-m", "ocync", "sync", "-c", str(CONFIG), *extra]
    print(f"$ ocync sync -c examples/demo.yaml {' '.join(extra)}".rstrip(), flush=True)
    return subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode


def main() -> int:
    start = time.monotonic()
    corpus = build_corpus(SPEC)
    summary = corpus.summary()
    with (
        MockProcess(["--profile", "generic", "--seed", "1"]) as source,
        MockProcess(
            [
                "--profile", "ghcr", "--auth", "token", "--user", f"demo:{TOKEN}",
                "--namespace", "demo:demo-org", "--rate-limit", CAP, "--seed", "2",
            ]
        ) as target,
        tempfile.TemporaryDirectory(prefix="ocync-demo-") as cache,
    ):
        print(f"source mock {source.url} (generic)   target mock {target.url} (ghcr profile, token auth, cap {CAP})")
        trio.run(push_corpus, corpus, source.url)
        print(
            f"seeded the source: {summary['repositories']} repositories, {summary['tags']} tags, "
            f"{summary['manifests']} manifests, {summary['blobs']} blobs "
            f"({summary['blob_bytes'] / 1024 / 1024:.1f} MiB), {summary['referrers']} referrers\n",
            flush=True,
        )
        env = {
            **os.environ,
            "DEMO_SOURCE": _host(source.url),
            "DEMO_TARGET": _host(target.url),
            "DEMO_TOKEN": TOKEN,
            "DEMO_CACHE": cache,
        }
        code = _run_sync(env)
        stats = target.stats()
        print(
            f"\ntarget mock saw {stats['requests_total']} requests ({_kinds(stats)}); "
            f"429s: {stats['throttled']}; credentials leaked to the storage host: {stats['auth_leaks']}\n",
            flush=True,
        )
        if code != 0:
            print(f"demo: ocync sync exited {code}", file=sys.stderr)
            return code
        print(
            f"{summary['tags']} tags were seeded and {summary['tags'] - 1} selected: the mapping of "
            "corpus/repo3 excludes v0.*. On this empty target a blob counts as skipped (already present) when "
            "an earlier image of the same run had already pushed it to that repository (shared base "
            "layers); mounted means it was linked from another repository of the target.\n",
            flush=True,
        )
        code = _run_sync(env)
        repo_map = {f"corpus/repo{i}": f"demo-org/repo{i}" for i in range(SPEC.repositories)}
        # repo2 is platform-filtered and repo3 drops v0.*: check the untouched ones bit for bit.
        plain = build_corpus(SPEC)
        images = tuple(i for i in plain.images if i.repo in ("corpus/repo0", "corpus/repo1"))
        check = type(plain)(plain.spec, plain.blobs, plain.manifests, images)
        problems = trio.run(
            lambda: verify_corpus(check, target.url, username="demo", password=TOKEN, repo_map=repo_map)
        )
        print(
            f"\nverified repo0 and repo1 bit for bit at the target: "
            f"{'ok' if not problems else problems[:3]}; demo took {time.monotonic() - start:.1f}s"
        )
        return code if not problems else 2


if __name__ == "__main__":
    raise SystemExit(main())
