"""The repository-count scale benchmark: N repositories x 2 small tags, mock -> mock, a cold sync
then a warm sync, measuring wall time, requests by kind (both mocks' /_mock/stats), peak RSS of
the ocync process, and the transfer cache's load and save times at 20,000 tags.

The source is seeded straight into a disk store (mockregistry's own Store, one persist per
repository) instead of being pushed over HTTP: 10,000 repositories seed in seconds. Both mocks
use the generic profile without auth or rate limit, so what is measured is ocync's own overhead
per repository and tag. `python -m stress.scale --sizes 100,1000,10000`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from mockregistry.manifests import ManifestCheck, check_manifest
from mockregistry.store import Store
from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import CacheFile
from stress.corpus import Corpus, build_corpus
from stress.registries import MockRegistryProcess
from stress.syncbench.measure import measure
from stress.syncbench.scenarios import scale_spec
from stress.syncbench.tools import ROOT, ocync_command, tool_env, write_ocync_config

DEFAULT_SIZES = (100, 1000, 10000)
CACHE_TAGS = 20_000  # the figure: the cache file at 10,000 repositories x 2 tags
RESULTS = ROOT / "stress" / "results"


def seed_store(corpus: Corpus, root: Path) -> None:
    """Write `corpus` into a mock disk store at `root`, as if every image had been pushed."""
    store = Store(root)
    for blob in corpus.blobs.values():
        store.put_content(blob.digest, blob.data)
    per_repo: dict[str, tuple[set[str], dict[str, str], dict[str, bytes]]] = {}
    for image in corpus.images:
        blobs, tags, manifests = per_repo.setdefault(image.repo, (set(), {}, {}))
        blobs.update(image.blobs)
        tags[image.tag] = image.digest
        for digest in image.manifests:
            manifests[digest] = corpus.manifests[digest].data
    for repo, (blobs, tags, manifests) in per_repo.items():
        records = []
        for digest, body in manifests.items():
            media_type = corpus.manifests[digest].media_type
            checked = check_manifest(body, media_type)
            assert isinstance(checked, ManifestCheck), f"{repo}@{digest}: refused by the mock"
            records.append((checked.record, body))
        store.seed_repository(repo, sorted(blobs), records, tags)


def _reset(mock: MockRegistryProcess) -> None:
    httpx.post(f"{mock.url}/_mock/reset", timeout=30).raise_for_status()


def _requests(mock: MockRegistryProcess) -> dict[str, int]:
    by_kind = mock.stats().get("by_kind", {})
    assert isinstance(by_kind, dict)
    return {str(k): int(v) for k, v in sorted(by_kind.items()) if v}  # kinds seen


def run_phase(
    phase: str, config: Path, source: MockRegistryProcess, target: MockRegistryProcess, tags: int
) -> dict[str, Any]:
    """One `ocync sync` run: wall, peak RSS, exit code and both mocks' requests by kind."""
    _reset(source)
    _reset(target)
    got = measure(ocync_command(config), env=tool_env())
    src, dst = _requests(source), _requests(target)
    summary: dict[str, Any] = {}
    try:
        summary = json.loads(got.stdout)["summary"]
    except (ValueError, KeyError, TypeError):
        print(got.stderr[-2000:], file=sys.stderr)
    requests = sum(src.values()) + sum(dst.values())
    return {
        "phase": phase,
        "exit_code": got.exit_code,
        "wall_s": round(got.wall, 2),
        "cpu_s": round(got.cpu_s, 2),
        "peak_rss_mib": round(got.peak_rss_mib, 1),
        "requests": requests,
        "requests_per_tag": round(requests / tags, 3),
        "wall_ms_per_tag": round(1000 * got.wall / tags, 3),
        "cpu_ms_per_tag": round(1000 * got.cpu_s / tags, 3),
        "source_by_kind": src,
        "target_by_kind": dst,
        "writes": sum(dst.get(k, 0) for k in ("upload_post", "upload_put", "mount", "manifest_put")),
        "images_failed": summary.get("images_failed"),
    }


def measure_size(n: int, workdir: Path) -> dict[str, Any]:
    corpus = build_corpus(scale_spec(n))
    tags = len(corpus.images)
    started = time.monotonic()
    seed_store(corpus, workdir / "source")
    seed_s = time.monotonic() - started
    repos = sorted(corpus.repos)
    del corpus  # the plan holds every blob's bytes; the runs need none of it
    with (
        MockRegistryProcess(workdir / "src", ["--storage", str(workdir / "source")]) as source,
        MockRegistryProcess(workdir / "dst") as target,
    ):
        config = workdir / "ocync.yaml"
        write_ocync_config(config, source.host, target.host, repos, workdir / "cache")
        out: dict[str, Any] = {"repositories": n, "tags": tags, "seed_s": round(seed_s, 2)}
        for phase in ("cold", "warm"):
            print(f"  scale {n}: {phase} ...", file=sys.stderr, flush=True)
            out[phase] = run_phase(phase, config, source, target, tags)
        out["target_peak_rss_mib"] = round(target.peak_rss_bytes() / 2**20, 1)
    cache_file = CacheFile(workdir / "cache", ttl=None)
    out["cache"] = time_cache(cache_file)
    return out


def time_cache(cache_file: CacheFile, repeats: int = 3) -> dict[str, Any]:
    """Best-of-`repeats` load and save times of the cache file ocync left (`now` after saving)."""
    size = cache_file.path.stat().st_size
    load_s = save_s = float("inf")
    cache = TransferCache()
    for _ in range(repeats):
        started = time.perf_counter()
        cache = cache_file.load(time.time())
        load_s = min(load_s, time.perf_counter() - started)
        started = time.perf_counter()
        cache_file.save(cache, time.time())
        save_s = min(save_s, time.perf_counter() - started)
    return {
        "tags": cache.statistics().tags,
        "file_bytes": size,
        "load_ms": round(1000 * load_s, 1),
        "save_ms": round(1000 * save_s, 1),
    }


def synthetic_cache(repositories: int, tags_per_repo: int = 2) -> TransferCache:
    """A cache as a cold run of scale_spec(repositories) leaves it: per repository 3 blobs (one
    shared base layer), its tags stamped."""
    cache = TransferCache()
    registry = "127.0.0.1:5000"
    base = "sha256:" + "b" * 64
    for r in range(repositories):
        repo = f"mirror/repo{r}"
        cache.record_blob(registry, repo, base)
        for t in range(tags_per_repo):
            own = f"sha256:{r:032x}{t:032x}"
            cache.record_blob(registry, repo, own)
            cache.record_tag(registry, repo, f"v0.{t}", f"sha256:{t:032x}{r:032x}")
    return cache


def time_synthetic_cache(workdir: Path, tags: int = CACHE_TAGS) -> dict[str, Any]:
    cache_file = CacheFile(workdir / "synthetic-cache", ttl=None)
    cache_file.save(synthetic_cache(tags // 2), time.time())
    return time_cache(cache_file)


def table(results: Sequence[dict[str, Any]], synthetic: dict[str, Any]) -> str:
    lines = [
        "| repositories | tags | phase | wall | ms/tag | CPU | CPU ms/tag | requests | req/tag | "
        "writes | peak RSS (ocync) | failed |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results:
        for phase in ("cold", "warm"):
            run = entry[phase]
            lines.append(
                f"| {entry['repositories']:,} | {entry['tags']:,} | {phase} | {run['wall_s']} s | "
                f"{run['wall_ms_per_tag']} | {run['cpu_s']} s | {run['cpu_ms_per_tag']} | "
                f"{run['requests']:,} | {run['requests_per_tag']} | "
                f"{run['writes']:,} | {run['peak_rss_mib']} MiB | {run['images_failed']} |"
            )
    lines += ["", "| cache file | tags | bytes | load | save |", "|---|---:|---:|---:|---:|"]
    for entry in results:
        c = entry["cache"]
        lines.append(
            f"| after {entry['repositories']:,} repositories | {c['tags']:,} | "
            f"{c['file_bytes']:,} | {c['load_ms']} ms | {c['save_ms']} ms |"
        )
    lines.append(
        f"| synthetic | {synthetic['tags']:,} | {synthetic['file_bytes']:,} | "
        f"{synthetic['load_ms']} ms | {synthetic['save_ms']} ms |"
    )
    lines += ["", *ratio_lines(results)]
    return "\n".join(lines) + "\n"


def ratio_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    """Peak RSS and warm wall time per tag between successive sizes (1.0 = linear)."""
    out = []
    for small, big in zip(results, results[1:], strict=False):
        scale = big["repositories"] / small["repositories"]
        for phase in ("cold", "warm"):
            rss = big[phase]["peak_rss_mib"] / small[phase]["peak_rss_mib"]
            per_tag = big[phase]["wall_ms_per_tag"] / small[phase]["wall_ms_per_tag"]
            cpu = big[phase]["cpu_ms_per_tag"] / small[phase]["cpu_ms_per_tag"]
            out.append(
                f"- {phase}, {big['repositories']:,} vs {small['repositories']:,} repositories "
                f"(x{scale:g}): peak RSS x{rss:.2f}, wall per tag x{per_tag:.2f}, "
                f"CPU per tag x{cpu:.2f}"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress.scale", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="repository counts, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "scale", help="writes OUT.json and OUT.md"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="ocync-scale-") as tmp:
        for n in sizes:
            results.append(measure_size(n, Path(tmp) / f"n{n}"))
        synthetic = time_synthetic_cache(Path(tmp))
    text = table(results, synthetic)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"sizes": results, "synthetic_cache": synthetic}, indent=1) + "\n"
    )
    args.out.with_suffix(".md").write_text(text)
    failed = any(entry[p]["exit_code"] != 0 for entry in results for p in ("cold", "warm"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
