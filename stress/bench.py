"""Benchmark runner: `python -m stress.bench [--quick] [--only NAME]...` (`make bench`).

Scenarios live in one table (`SCENARIOS`): the mock registry's own below (the `@scenario`
decorator), then the ones stress/client_bench.py and stress/syncbench/ define, imported here.
Results go to stress/results/bench.json (merged, so `--only` keeps the other scenarios' last
numbers) and a Markdown table bench.md. The mock scenarios run `ocync-mockregistry serve` as a
subprocess; the load comes from this process (stress/loadgen.py), so server and client do not
share an interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stress import client_bench
from stress.benchscenario import BenchContext, Metric, Scenario, ScenarioResult
from stress.loadgen import RawConnection, hammer_heads, repeated_digest, upload_blob
from stress.mockproc import MockProcess
from stress.syncbench import SCENARIO_TABLE, bench_metrics

__all__ = ["SCENARIOS", "BenchContext", "Metric", "Scenario", "ScenarioResult", "main", "run"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MB = 1_000_000  # throughput in MB/s = 10^6 bytes per second
MiB = 1 << 20

SCENARIOS: dict[str, Scenario] = {}


def add_scenarios(scenarios: Iterable[Scenario]) -> None:
    """Put `scenarios` into the table; a name may be there only once."""
    for item in scenarios:
        if item.name in SCENARIOS:
            raise ValueError(f"benchmark scenario {item.name!r} is registered twice")
        SCENARIOS[item.name] = item


def scenario(
    name: str, description: str
) -> Callable[[Callable[[BenchContext], ScenarioResult]], Callable[[BenchContext], ScenarioResult]]:
    """Register a benchmark scenario under `name` (unique)."""

    def register(
        func: Callable[[BenchContext], ScenarioResult],
    ) -> Callable[[BenchContext], ScenarioResult]:
        add_scenarios([Scenario(name, description, func)])
        return func

    return register


# --- mock registry scenarios ------------------------------------------------------------------

# The mock registry's design targets on a 2-core machine (README, "Performance": the mock table).
DOWNLOAD_TARGET_MBS = 300.0
UPLOAD_TARGET_MBS = 200.0
SMALL_REQUESTS_TARGET = 3000.0
# "Flat": peak RSS may not grow by more than this when the blob grows 16x.
MEMORY_GROWTH_LIMIT_MIB = 32.0

CHUNK = os.urandom(MiB)  # one reused 1 MiB buffer; blobs are it repeated (plus a unique head)


def _unique_chunk(tag: str) -> bytes:
    head = f"ocync-bench {tag} {time.time_ns()}\n".encode()
    return head + CHUNK[len(head) :]


@scenario("mock_download", "blob GET throughput from the mock (memory store), 1 and 4 connections")
def bench_download(ctx: BenchContext) -> ScenarioResult:
    size_mib = 64 if ctx.quick else 256
    rounds = 2 if ctx.quick else 3
    result = ScenarioResult(details={"blob_mib": size_mib, "rounds": rounds})
    with MockProcess(["--profile", "generic"]) as mock:
        conn = RawConnection(mock.url)
        chunk = _unique_chunk("download")
        digest = repeated_digest(chunk, size_mib)
        upload_blob(conn, "bench/download", chunk, size_mib, digest)
        target = f"/v2/bench/download/blobs/{digest}"
        best = 0.0
        for _ in range(rounds):
            start = time.perf_counter()
            got = conn.request("GET", target, sink=True)
            elapsed = time.perf_counter() - start
            if got.status != 200 or got.body_length != size_mib * MiB:
                raise RuntimeError(f"GET blob -> {got.status}, {got.body_length} bytes")
            best = max(best, size_mib * MiB / elapsed / MB)
        conn.close()
        result.metrics.append(
            Metric("download, 1 connection (best round)", best, "MB/s", DOWNLOAD_TARGET_MBS)
        )
        result.metrics.append(
            Metric(
                "download, 4 connections", _parallel_download(mock.url, target, size_mib), "MB/s"
            )
        )
        result.details["mock_bytes_out"] = mock.stats().get("bytes_out")
    return result


def _parallel_download(url: str, target: str, size_mib: int, connections: int = 4) -> float:
    import threading

    errors: list[str] = []

    def fetch() -> None:
        conn = RawConnection(url)
        try:
            got = conn.request("GET", target, sink=True)
            if got.status != 200 or got.body_length != size_mib * MiB:
                errors.append(f"GET -> {got.status} {got.body_length}")
        finally:
            conn.close()

    threads = [threading.Thread(target=fetch) for _ in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError("; ".join(errors))
    return connections * size_mib * MiB / elapsed / MB


@scenario(
    "mock_upload", "blob upload throughput to the mock with digest verification (memory store)"
)
def bench_upload(ctx: BenchContext) -> ScenarioResult:
    size_mib = 64 if ctx.quick else 256
    rounds = 2 if ctx.quick else 3
    result = ScenarioResult(details={"blob_mib": size_mib, "rounds": rounds})
    with MockProcess(["--profile", "generic"]) as mock:
        conn = RawConnection(mock.url)
        for streamed, label in ((False, "monolithic PUT"), (True, "POST + PATCH + PUT")):
            best = 0.0
            for n in range(rounds):
                chunk = _unique_chunk(f"upload {label} {n}")
                digest = repeated_digest(chunk, size_mib)  # hashed before the clock starts
                start = time.perf_counter()
                upload_blob(conn, f"bench/upload{n}", chunk, size_mib, digest, streamed=streamed)
                elapsed = time.perf_counter() - start
                best = max(best, size_mib * MiB / elapsed / MB)
            target = UPLOAD_TARGET_MBS if not streamed else None
            result.metrics.append(Metric(f"upload, {label} (best round)", best, "MB/s", target))
        # A wrong digest must be refused: the server really verifies what it stores.
        chunk = _unique_chunk("upload bad digest")
        wrong = repeated_digest(chunk + b"x", 1)
        try:
            upload_blob(conn, "bench/bad", chunk, 1, wrong)
        except RuntimeError as exc:
            result.details["wrong_digest_refused"] = "400" in str(exc)
        else:
            result.details["wrong_digest_refused"] = False
        conn.close()
        result.details["mock_bytes_in"] = mock.stats().get("bytes_in")
    if not result.details["wrong_digest_refused"]:
        raise RuntimeError("the mock accepted an upload with a wrong digest")
    return result


@scenario(
    "mock_small_requests", "blob HEAD requests per second against the mock, keep-alive connections"
)
def bench_small_requests(ctx: BenchContext) -> ScenarioResult:
    seconds = 2.0 if ctx.quick else 5.0
    result = ScenarioResult(details={"seconds": seconds})
    with MockProcess(["--profile", "generic"]) as mock:
        conn = RawConnection(mock.url)
        chunk = b"small blob for HEAD requests"
        digest = repeated_digest(chunk, 1)
        upload_blob(conn, "bench/small", chunk, 1, digest)
        conn.close()
        target = f"/v2/bench/small/blobs/{digest}"
        for connections in (1, 8):
            rate = hammer_heads(mock.url, target, connections=connections, seconds=seconds)
            if rate.errors:
                raise RuntimeError(f"{rate.errors} of {rate.requests} HEAD requests failed")
            target_rps = SMALL_REQUESTS_TARGET if connections == 8 else None
            result.metrics.append(
                Metric(
                    f"blob HEAD, {connections} connection(s)", rate.per_second, "req/s", target_rps
                )
            )
            result.details[f"requests_{connections}"] = rate.requests
        result.details["mock_requests_total"] = mock.stats().get("requests_total")
    return result


def _stream_through_disk(ctx: BenchContext, size_mib: int) -> dict[str, float]:
    storage = Path(tempfile.mkdtemp(prefix="ocync-bench-storage-", dir=ctx.workdir))
    try:
        with MockProcess(["--profile", "generic", "--storage", str(storage)]) as mock:
            baseline = mock.rss_bytes()
            conn = RawConnection(mock.url)
            chunk = _unique_chunk(f"memory {size_mib}")
            digest = repeated_digest(chunk, size_mib)
            start = time.perf_counter()
            upload_blob(conn, "bench/memory", chunk, size_mib, digest, streamed=True)
            up = time.perf_counter() - start
            start = time.perf_counter()
            got = conn.request("GET", f"/v2/bench/memory/blobs/{digest}", sink=True)
            down = time.perf_counter() - start
            conn.close()
            if got.status != 200 or got.body_length != size_mib * MiB:
                raise RuntimeError(f"GET blob -> {got.status}, {got.body_length} bytes")
            peak = mock.peak_rss_bytes()
        return {
            "baseline_rss_mib": baseline / MiB,
            "peak_rss_mib": peak / MiB,
            "upload_mbs": size_mib * MiB / up / MB,
            "download_mbs": size_mib * MiB / down / MB,
        }
    finally:
        shutil.rmtree(storage, ignore_errors=True)


@scenario(
    "mock_memory", "peak RSS of the mock streaming a small vs a large blob through --storage DIR"
)
def bench_memory(ctx: BenchContext) -> ScenarioResult:
    small_mib, large_mib = (16, 256) if ctx.quick else (64, 1024)
    small = _stream_through_disk(ctx, small_mib)
    large = _stream_through_disk(ctx, large_mib)
    growth = large["peak_rss_mib"] - small["peak_rss_mib"]
    return ScenarioResult(
        metrics=[
            Metric(f"peak RSS, {small_mib} MiB blob", small["peak_rss_mib"], "MiB"),
            Metric(f"peak RSS, {large_mib} MiB blob", large["peak_rss_mib"], "MiB"),
            Metric(
                "peak RSS growth", growth, "MiB", MEMORY_GROWTH_LIMIT_MIB, higher_is_better=False
            ),
            Metric(f"disk upload, {large_mib} MiB (streamed)", large["upload_mbs"], "MB/s"),
            Metric(f"disk download, {large_mib} MiB", large["download_mbs"], "MB/s"),
        ],
        details={"small": small, "large": large},
    )


# --- the other modules' scenarios -------------------------------------------------------------


def _sync_group(
    key: str, description: str, group: Callable[[bool, Path], dict[str, Any]]
) -> Scenario:
    """A stress/syncbench scenario group as a table entry (its own subdirectory of the workdir)."""

    def run(ctx: BenchContext) -> ScenarioResult:
        workdir = ctx.workdir / key
        workdir.mkdir(parents=True, exist_ok=True)
        result = group(ctx.quick, workdir)
        return ScenarioResult(metrics=bench_metrics(key, result), details=result)

    return Scenario(key, description, run)


add_scenarios(client_bench.bench_scenarios())
add_scenarios(_sync_group(key, *entry) for key, entry in SCENARIO_TABLE.items())


# --- runner ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _format(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# ocync benchmarks",
        "",
        f"Machine: {report['machine']['cpus']} CPUs, Python {report['machine']['python']}. "
        "Command: `make bench` (`python -m stress.bench`).",
        "",
        "| scenario | metric | value | target | ok |",
        "|---|---|---:|---:|:---:|",
    ]
    for name, entry in report["scenarios"].items():
        if "error" in entry:
            lines.append(f"| {name} | error: {entry['error']} | | | no |")
            continue
        quick = " (quick)" if entry.get("quick") else ""
        for metric in entry["metrics"]:
            target = ""
            if metric["target"] is not None:
                sign = ">=" if metric["higher_is_better"] else "<="
                target = f"{sign} {_format(metric['target'])} {metric['unit']}"
            ok = {True: "yes", False: "no", None: ""}[metric["ok"]]
            lines.append(
                f"| {name}{quick} | {metric['name']} | {_format(metric['value'])} {metric['unit']} | {target} | {ok} |"
            )
    return "\n".join(lines) + "\n"


def run(names: Sequence[str], *, quick: bool, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    scenarios = SCENARIOS
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise SystemExit(
            f"bench: error: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(scenarios)}"
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / "bench.json"
    report: dict[str, Any] = {"scenarios": {}}
    if json_path.exists():
        try:
            report = json.loads(json_path.read_text())
        except ValueError:
            pass
    report["machine"] = machine()
    report.setdefault("scenarios", {})
    with tempfile.TemporaryDirectory(prefix="ocync-bench-") as tmp:
        ctx = BenchContext(quick=quick, workdir=Path(tmp))
        for name in names or list(scenarios):
            entry: dict[str, Any] = {"description": scenarios[name].description, "quick": quick}
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                result = scenarios[name].run(ctx)
            except Exception as exc:  # a failing scenario is reported, the others still run
                entry["error"] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            else:
                entry["metrics"] = [{**asdict(m), "ok": m.ok} for m in result.metrics]
                entry["details"] = result.details
            entry["seconds"] = round(time.perf_counter() - start, 2)
            entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            report["scenarios"][name] = entry
            for metric in entry.get("metrics", []):
                print(
                    f"  {metric['name']}: {_format(metric['value'])} {metric['unit']}",
                    file=sys.stderr,
                )
            if "error" in entry:
                print(f"  error: {entry['error']}", file=sys.stderr)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    (results_dir / "bench.md").write_text(render_markdown(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stress.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller blobs and shorter runs")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    scenarios = SCENARIOS
    if args.list:
        for name, item in scenarios.items():
            print(f"{name}: {item.description}")
        return 0
    report = run(args.only, quick=args.quick, results_dir=args.results_dir)
    print(
        render_markdown(
            {**report, "scenarios": {n: report["scenarios"][n] for n in (args.only or scenarios)}}
        )
    )
    failed = [n for n in (args.only or scenarios) if "error" in report["scenarios"][n]]
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
