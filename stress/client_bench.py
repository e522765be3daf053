"""Client data-plane benchmarks: copy large blobs registry -> registry with
ocync's client and report MB/s, client CPU seconds per GB, the ratio to this machine's
single-core SHA-256 rate (the floor: every byte is hashed once) and peak RSS.

Each measurement runs in a child process (``python -m stress.client_bench child ...``) so its
CPU time and peak RSS are the client's alone; the registries are separate processes too.
``bench_scenarios()`` gives stress/bench.py its table entries; standalone:
``python -m stress.client_bench``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from stress.benchscenario import BenchContext, Metric, Scenario, ScenarioResult

MiB = 1 << 20
MB = 1_000_000
# The client data plane's design targets (README, "Performance": the blob-copy table), and the
# zero-copy body relay's: one 1 GiB blob costs at most 1.5 x hashing its bytes, in <= 40 MB.
THROUGHPUT_PER_CORE_TARGET = 300.0  # MB/s of client CPU time
RSS_TARGET_MB = 100.0
ONE_BLOB_SHA_RATIO_TARGET = 1.5
ONE_BLOB_RSS_TARGET_MB = 40.0


class _PatternChunks:
    """``size`` bytes of a seeded 1 MiB pattern, as an async iterator (seeding only)."""

    def __init__(self, seed: int, size: int) -> None:
        self.block = hashlib.sha256(f"ocync-client-bench-{seed}".encode()).digest() * (MiB // 32)
        self.left = size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.left <= 0:
            raise StopAsyncIteration
        n = min(self.left, len(self.block))
        self.left -= n
        await trio.lowlevel.checkpoint()
        return self.block[:n]


def _pattern_digest(seed: int, size: int) -> str:
    chunks = _PatternChunks(seed, size)
    h = hashlib.sha256()
    left = size
    while left:
        n = min(left, len(chunks.block))
        h.update(chunks.block[:n])
        left -= n
    return h.hexdigest()


def pattern_sha256_cpu(size: int) -> float:
    """Process CPU seconds for hashlib.sha256 over the bench's ``size`` pattern bytes (1 MiB
    slices, as a copy hands them over): the floor for copying them, measured in the same run."""
    view = memoryview(_PatternChunks(0, size).block)
    h = hashlib.sha256()
    start = time.process_time()
    left = size
    while left:
        n = min(left, len(view))
        h.update(view[:n])
        left -= n
    h.digest()
    return time.process_time() - start


def sha256_rate() -> float:
    """Single-core SHA-256 MB/s on 64 MiB (process CPU time)."""
    data = os.urandom(64 * MiB)
    start = time.process_time()
    for _ in range(3):
        hashlib.sha256(data).digest()
    return 3 * len(data) / (time.process_time() - start) / MB


async def _child(src_url: str, dst_url: str, size: int, count: int, profile: str) -> dict[str, Any]:
    from ocync.oci.digest import Digest
    from ocync.oci.manifest import Descriptor
    from ocync.registry.blobs import BlobTarget, copy_blob, push_blob
    from ocync.registry.client import ClientSettings
    from ocync.registry.pool import ClientPool

    descriptors = [
        Descriptor("application/octet-stream", Digest("sha256", _pattern_digest(i, size)), size) for i in range(count)
    ]
    async with ClientPool() as pool:
        src = await pool.client(src_url, ClientSettings(profile=profile))
        dst = await pool.client(dst_url, ClientSettings(profile=profile))
        for i, desc in enumerate(descriptors):
            await push_blob(src, "bench/src", desc, lambda i=i: _PatternChunks(i, size))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, wall0 = time.process_time(), time.perf_counter()

        async def one(desc: Descriptor) -> None:
            [result] = await copy_blob(src, "bench/src", desc, [BlobTarget(dst, "bench/dst")])
            if result.error is not None:
                raise result.error

        async with trio.open_nursery() as nursery:
            for desc in descriptors:
                nursery.start_soon(one, desc)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        requests = dst.statistics().requests + src.statistics().requests
    total = size * count
    sha_cpu = pattern_sha256_cpu(total)
    return {
        "sha256_cpu_s": sha_cpu,
        "bytes": total,
        "wall_s": wall,
        "cpu_s": cpu,
        "user_s": usage.ru_utime - usage0.ru_utime,  # in the kernel: socket copies, TCP
        "sys_s": usage.ru_stime - usage0.ru_stime,
        "rss_before_mb": rss_before / 1024,
        "peak_rss_mb": peak / 1024,
        "requests": requests,
    }


def run_child(src_url: str, dst_url: str, size_mib: int, count: int, profile: str = "generic") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "stress.client_bench", "child", src_url, dst_url, str(size_mib), str(count), profile],
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def summarise(raw: dict[str, Any], sha_mbs: float) -> dict[str, float]:
    gb = raw["bytes"] / 1e9
    cpu_per_gb = raw["cpu_s"] / gb
    return {
        "MB/s": raw["bytes"] / raw["wall_s"] / MB,
        "client CPU s/GB": cpu_per_gb,
        "MB/s per client core": raw["bytes"] / raw["cpu_s"] / MB,
        "ratio to SHA-256 floor": cpu_per_gb / (1000.0 / sha_mbs),
        "SHA-256 MB/s (1 core)": sha_mbs,
        "peak RSS MB": raw["peak_rss_mb"],
        "RSS before the copy MB": raw["rss_before_mb"],
        "user CPU s/GB": raw["user_s"] / gb,
        "system CPU s/GB": raw["sys_s"] / gb,
        # the same bytes hashed with hashlib in the same child, right after the copy
        "SHA-256 CPU s/GB, same run": raw["sha256_cpu_s"] / gb,
        "ratio to SHA-256, same run": raw["cpu_s"] / raw["sha256_cpu_s"],
    }


def _pairs(kind: str, workdir: Path) -> tuple[Any, Any, list[Any]]:
    from stress.mockproc import MockProcess
    from stress.registries import DistributionProcess

    if kind == "mock":
        a = MockProcess(["--profile", "generic"]).start()
        b = MockProcess(["--profile", "generic"]).start()
    else:
        a = DistributionProcess(workdir / "dist-a").start()
        b = DistributionProcess(workdir / "dist-b").start()
    return a, b, [a, b]


def _stop(items: list[Any]) -> None:
    for item in items:
        item.stop()


def measure(kind: str, quick: bool, workdir: Path, *, one_blob_only: bool = False) -> dict[str, Any]:
    size_mib, count = (64, 2) if quick else (256, 4)
    single_mib = 256 if quick else 1024
    src, dst, items = _pairs(kind, workdir)
    try:
        copy = None if one_blob_only else run_child(src.url, dst.url, size_mib, count)
        single = run_child(src.url, dst.url, single_mib, 1)
    finally:
        _stop(items)
    sha = sha256_rate()
    result: dict[str, Any] = {"one_blob": summarise(single, sha), "single_blob_mib": single_mib}
    if copy is not None:
        result.update(copy=summarise(copy, sha), blob_mib=size_mib, blobs=count)
    return result


def bench_scenarios() -> list[Scenario]:
    """stress/bench.py's entries: one copy benchmark per registry kind."""
    scenarios = []
    for kind, label in (
        ("mock", "mock -> mock"),
        ("distribution", "docker-registry -> docker-registry"),
    ):

        def run(ctx: BenchContext, kind: str = kind) -> ScenarioResult:
            data = measure(kind, ctx.quick, ctx.workdir)
            copy, one = data["copy"], data["one_blob"]
            blob = f"one {data['single_blob_mib']} MiB blob"
            metrics = [
                Metric("throughput", copy["MB/s"], "MB/s"),
                Metric("client CPU per GB", copy["client CPU s/GB"], "s/GB", higher_is_better=False),
                Metric("client throughput per core", copy["MB/s per client core"], "MB/s",
                       THROUGHPUT_PER_CORE_TARGET),
                Metric("CPU vs SHA-256 floor", copy["ratio to SHA-256 floor"], "x", higher_is_better=False),
                Metric(f"peak RSS, {blob}", one["peak RSS MB"], "MB", RSS_TARGET_MB, False),
                Metric(f"{blob}: client CPU per GB", one["client CPU s/GB"], "s/GB", higher_is_better=False),
                Metric(f"{blob}: SHA-256 CPU per GB, same run", one["SHA-256 CPU s/GB, same run"], "s/GB",
                       higher_is_better=False),
                Metric(f"{blob}: CPU vs SHA-256, same run", one["ratio to SHA-256, same run"], "x",
                       ONE_BLOB_SHA_RATIO_TARGET, False),
                Metric(f"{blob}: peak RSS vs the zero-copy target", one["peak RSS MB"], "MB",
                       ONE_BLOB_RSS_TARGET_MB, False),
            ]
            return ScenarioResult(metrics=metrics, details=data)

        description = f"ocync blob copy {label}: MB/s, CPU/GB vs SHA-256, peak RSS"
        scenarios.append(Scenario(f"client_copy_{kind}", description, run))
    return scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress.client_bench")
    sub = parser.add_subparsers(dest="cmd")
    child = sub.add_parser("child")
    child.add_argument("src")
    child.add_argument("dst")
    child.add_argument("size_mib", type=int)
    child.add_argument("count", type=int)
    child.add_argument("profile", nargs="?", default="generic")
    run = sub.add_parser("run")
    run.add_argument("--quick", action="store_true")
    run.add_argument("--kind", choices=["mock", "distribution"], action="append")
    run.add_argument("--one-blob", action="store_true", help="only the one-big-blob row")
    args = parser.parse_args(argv)
    if args.cmd == "child":
        result = trio.run(_child, args.src, args.dst, args.size_mib * MiB, args.count, args.profile)
        print(json.dumps(result))
        return 0
    kinds = (args.kind if args.cmd == "run" and args.kind else ["mock", "distribution"])
    quick = bool(getattr(args, "quick", False))
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            one = bool(getattr(args, "one_blob", False))
            print(kind, json.dumps(measure(kind, quick, Path(tmp), one_blob_only=one), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
