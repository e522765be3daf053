"""Issue 4's rate-limit acceptance scenarios, run against the mock registry through ocync's client.

1. known cap: GHCR profile capped at 600/6s, >= 3000 registry operations (small blob uploads and
   copies, manifest reads) from several tasks sharing one principal -> zero 429s and a request
   rate >= 90% of the cap while work is pending (measured from the mock's stats timeline);
2. unknown cap: generic profile, a cap the client is not configured with -> every operation
   completes, 429s <= 2% of requests, utilisation >= 80%. The mock's 429 message announces
   the cap (as GHCR's does), so the scenario also runs with the announcement ignored (2b: the
   controller estimates the cap from its first hinted 429) and, for comparison, with neither
   (2c: only the AIMD windows and the hint pauses act);
3. shared principal: two OS processes with the same credentials, each with --rate-share 0.5
   -> zero 429s.

``python -m stress.ratelimit_scenarios`` prints JSON and a Markdown table and writes them, with
a PNG of scenario 2's window size and request rate over time, to ``stress/results/``.
``--quick`` runs the small versions the integration tests use.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from mockregistry import MockOptions, serve_mock
from ocync.errors import OcyncError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController
from ocync.registry.auth import AuthSettings
from ocync.registry.blobs import copy_blob_to, upload_blob
from ocync.registry.client import ClientSettings, RegistryClient
from ocync.registry.profiles import profile_named

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "stress" / "results"
USER, PASSWORD = "alice", "pat-alice"


# -- the workload --------------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    """Controller snapshots over time (for the plot): t, window per key, throttles."""

    t: list[float] = field(default_factory=list)
    windows: dict[str, list[float]] = field(default_factory=dict)
    throttles: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)


@dataclass(slots=True)
class WorkloadResult:
    operations: int  # registry API requests of the workload (client counters, seeding excluded)
    units: int
    errors: list[str]
    seconds: float
    client: dict[str, Any]
    controller: dict[str, Any]
    samples: Samples


def _manifest(config: Descriptor, layer: Descriptor) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": config.media_type,
            "digest": str(config.digest),
            "size": config.size,
        },
        "layers": [
            {"mediaType": layer.media_type, "digest": str(layer.digest), "size": layer.size}
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _blob(data: bytes, media_type: str = mt.OCI_LAYER) -> Descriptor:
    return Descriptor(media_type, Digest.of(data), len(data))


async def _push_blob(
    client: RegistryClient, repo: str, data: bytes, media_type: str = mt.OCI_LAYER
) -> Descriptor:
    """Upload with a fresh session per attempt: a throttled *streamed* PUT cannot be replayed
    by the client, so the transfer restarts (as the engine's blob copies do)."""
    desc = _blob(data, media_type)
    for attempt in range(1, 6):
        try:
            await upload_blob(client, repo, desc, _chunks(data))
            return desc
        except OcyncError as exc:
            if not exc.temporary or attempt == 5:
                raise
    raise AssertionError("unreachable")


async def run_workload(
    url: str,
    *,
    profile: str,
    operations: int,
    tasks: int,
    rate_limit: str | None,
    rate_share: float = 1.0,
    prefix: str = "rl",
    seed: int = 1,
    learning: str = "announced",
    sample_every: float = 0.1,
    on_start: Callable[[], None] | None = None,
) -> WorkloadResult:
    """``tasks`` tasks sharing one principal (a source and a target client, one controller)
    repeat a unit (upload a small blob, copy it to a second repository, read the image's
    manifest twice, HEAD the copy) until the client has made ``operations`` requests."""
    settings = ClientSettings(
        auth=AuthSettings(kind="basic", username=USER, password=PASSWORD),
        profile=profile,
        rate_limit=rate_limit,
        rate_share=rate_share,
        insecure=True,
    )
    registry = ControllerRegistry(rate_share=rate_share)
    controller: PrincipalController | None = None
    if learning != "announced":
        prof = profile_named(profile)
        cap = parse_rate(rate_limit) if rate_limit else None
        controller = PrincipalController(
            f"{url}|{USER}",
            window_groups=prof.window_groups,
            cap=cap,
            rate_share=rate_share,
            adopt_announced_cap=False,
            estimate_cap=learning == "estimated",
            seed=seed,
        )
    rng = random.Random(seed)
    errors: list[str] = []
    samples = Samples()
    async with (
        RegistryClient(
            url, settings, controllers=registry, controller=controller, seed=seed
        ) as source,
        RegistryClient(
            url, settings, controllers=registry, controller=controller, seed=seed + 1
        ) as target,
    ):
        assert source.controller is target.controller, "one principal, one controller"
        ctl = source.controller

        def made() -> int:
            """Registry API requests so far (the storage host's blob GETs are not API calls)."""
            total = 0
            for client in (source, target):
                stats = client.statistics()
                total += stats.requests - stats.by_kind.get("storage_get", 0)
            return total

        # Seed one image per task (its requests count as operations too).
        bases: list[str] = []
        for t in range(tasks):
            repo = f"{USER}/{prefix}-src-{t}"
            config = await _push_blob(
                source, repo, b'{"architecture":"amd64","os":"linux"}', mt.OCI_CONFIG
            )
            layer = await _push_blob(source, repo, rng.randbytes(512))
            await source.put_manifest(repo, "base", _manifest(config, layer), mt.OCI_MANIFEST)
            bases.append(repo)
        if on_start is not None:
            on_start()
        base = made()
        start = trio.current_time()
        units = 0

        async def worker(t: int) -> None:
            nonlocal units
            task_rng = random.Random(seed * 1000 + t)
            src, dst = bases[t], f"{USER}/{prefix}-dst-{t}"
            while made() - base < operations:
                try:
                    desc = await _push_blob(
                        source, src, task_rng.randbytes(task_rng.randint(256, 4096))
                    )
                    await copy_blob_to(source, src, desc, target, dst)
                    await source.get_manifest(src, "base")
                    await target.head_blob(dst, desc.digest)
                    await source.get_manifest(src, "base")
                    units += 1
                except Exception as exc:  # reported, the scenario then fails
                    errors.append(f"{type(exc).__name__}: {exc}")
                    if len(errors) > 20:
                        raise

        async def sampler(cancel: trio.CancelScope) -> None:
            with cancel:
                while True:
                    stats = ctl.statistics()
                    samples.t.append(trio.current_time() - start)
                    samples.throttles.append(stats.throttles)
                    samples.requests.append(made() - base)
                    for key, window in stats.windows.items():
                        series = samples.windows.setdefault(key, [math.nan] * (len(samples.t) - 1))
                        series.append(window.window.window)
                    for series in samples.windows.values():
                        if len(series) < len(samples.t):
                            series.append(series[-1] if series else math.nan)
                    await trio.sleep(sample_every)

        cancel = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sampler, cancel)
            async with trio.open_nursery() as workers:
                for t in range(tasks):
                    workers.start_soon(worker, t)
            cancel.cancel()
        seconds = trio.current_time() - start
        client_stats = source.statistics().to_dict()
        target_stats = target.statistics().to_dict()
        return WorkloadResult(
            operations=made() - base,
            units=units,
            errors=errors,
            seconds=seconds,
            client={"source": client_stats, "target": target_stats},
            controller=ctl.statistics().to_dict(),
            samples=samples,
        )


# -- measuring -------------------------------------------------------------------------------------


def measure(stats: dict[str, Any], count: int, period: float, seconds: float) -> dict[str, Any]:
    """Rates from the mock's per-second timeline while work was pending.

    The timeline starts when the stats were reset (the workload's start); the last, partial
    second is left out. The timeline also counts the storage host's GETs (blob redirects, not
    rate limited), so they are taken out in proportion. ``utilisation`` counts accepted API
    requests (a 429 uses no capacity) against the cap.
    """
    timeline = stats.get("timeline", [])
    full = [row for row in timeline if row["t"] < math.floor(seconds)]
    cap_rate = count / period
    total = stats["requests_total"]
    storage = stats.get("by_kind", {}).get("storage_get", 0)
    api_share = (total - storage) / total if total else 1.0
    requests = sum(row["requests"] for row in full) * api_share
    throttled = sum(row["throttled"] for row in full)
    n = max(1, len(full))
    return {
        "requests": total - storage,
        "storage_requests": storage,
        "throttled": stats["throttled"],
        "throttled_pct": round(100.0 * stats["throttled"] / max(1, total - storage), 3),
        "seconds_measured": len(full),
        "request_rate": round(requests / n, 2),
        "accepted_rate": round((requests - throttled) / n, 2),
        "cap_rate": round(cap_rate, 2),
        "utilisation": round((requests - throttled) / n / cap_rate, 4),
        "timeline": timeline,
    }


@dataclass(slots=True)
class ScenarioResult:
    name: str
    title: str
    passed: bool
    checks: dict[str, bool]
    numbers: dict[str, Any]
    samples: Samples | None = None

    def summary(self) -> dict[str, Any]:
        numbers = dict(self.numbers)
        numbers["timeline"] = [
            [row["t"], row["requests"], row["throttled"]] for row in numbers.get("timeline", [])
        ]
        return {
            "name": self.name,
            "title": self.title,
            "passed": self.passed,
            "checks": self.checks,
            **numbers,
        }


def _mock_options(profile: str, cap: str, seed: int) -> MockOptions:
    return MockOptions(
        profile=profile, auth="token", users={USER: PASSWORD}, rate_limit=cap, seed=seed
    )


async def scenario_known_cap(
    *, operations: int, tasks: int, cap: str, seed: int = 1
) -> ScenarioResult:
    rate = parse_rate(cap)
    async with serve_mock(_mock_options("ghcr", cap, seed)) as mock:
        result = await run_workload(
            mock.url,
            profile="ghcr",
            operations=operations,
            tasks=tasks,
            rate_limit=cap,
            prefix="known",
            seed=seed,
            on_start=mock.reset_stats,
        )
        numbers = measure(mock.stats(), rate.count, rate.period, result.seconds)
    numbers.update(_workload_numbers(result))
    checks = {
        "all operations completed": not result.errors,
        f">= {operations} registry operations": numbers["requests"] >= operations,
        "zero 429s": numbers["throttled"] == 0,
        "request rate >= 90% of the cap": numbers["utilisation"] >= 0.90,
    }
    return ScenarioResult(
        "known_cap",
        f"known cap ({cap}, ghcr profile, {tasks} tasks)",
        all(checks.values()),
        checks,
        numbers,
        result.samples,
    )


async def scenario_unknown_cap(
    *, operations: int, tasks: int, cap: str, seed: int = 1, learning: str = "announced"
) -> ScenarioResult:
    """``learning``: "announced" (the default controller: it adopts the cap the mock's 429
    message states), "estimated" (ignores the announcement and infers the cap from its first
    hinted 429), "aimd" (neither: only the AIMD windows and the hint pauses; informational)."""
    rate = parse_rate(cap)
    async with serve_mock(_mock_options("generic", cap, seed)) as mock:
        result = await run_workload(
            mock.url,
            profile="generic",
            operations=operations,
            tasks=tasks,
            rate_limit=None,
            prefix="unknown",
            seed=seed,
            learning=learning,
            on_start=mock.reset_stats,
        )
        numbers = measure(mock.stats(), rate.count, rate.period, result.seconds)
    numbers.update(_workload_numbers(result))
    checks = {"all operations completed": not result.errors}
    if learning != "aimd":
        checks["429s <= 2% of requests"] = numbers["throttled_pct"] <= 2.0
        checks["utilisation >= 80% of the cap"] = numbers["utilisation"] >= 0.80
    name = {"announced": "unknown_cap", "estimated": "unknown_cap_estimated"}.get(
        learning, "unknown_cap_aimd_only"
    )
    how = {
        "announced": "adopts the cap its 429 announces",
        "estimated": "announcement ignored, cap estimated from the first 429",
        "aimd": "AIMD windows and hint pauses only, for comparison",
    }[learning]
    return ScenarioResult(
        name,
        f"unknown cap ({cap} on the mock, generic profile, {how})",
        all(checks.values()),
        checks,
        numbers,
        result.samples,
    )


async def scenario_shared_principal(
    *, operations: int, tasks: int, cap: str, seed: int = 1, processes: int = 2
) -> ScenarioResult:
    """The mock runs here; ``processes`` worker processes share its one principal."""
    rate = parse_rate(cap)
    share = 1.0 / processes
    async with serve_mock(_mock_options("ghcr", cap, seed)) as mock:
        mock.reset_stats()
        started = trio.current_time()
        outputs: list[dict[str, Any]] = []

        async def worker(i: int) -> None:
            cmd = [
                sys.executable,
                "-m",
                "stress.ratelimit_scenarios",
                "worker",
                "--url",
                mock.url,
                "--profile",
                "ghcr",
                "--rate-limit",
                cap,
                "--rate-share",
                str(share),
                "--operations",
                str(operations // processes),
                "--tasks",
                str(tasks),
                "--prefix",
                f"shared{i}",
                "--seed",
                str(seed + i),
            ]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = await trio.run_process(
                cmd, capture_stdout=True, capture_stderr=True, check=False, env=env
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"worker {i} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
                )
            outputs.append(json.loads(proc.stdout.decode().strip().splitlines()[-1]))

        async with trio.open_nursery() as nursery:
            for i in range(processes):
                nursery.start_soon(worker, i)
        seconds = trio.current_time() - started
        numbers = measure(mock.stats(), rate.count, rate.period, seconds)
    numbers["processes"] = processes
    numbers["rate_share"] = share
    numbers["worker_operations"] = [o["operations"] for o in outputs]
    numbers["worker_errors"] = sum(len(o["errors"]) for o in outputs)
    numbers["errors"] = [e for o in outputs for e in o["errors"]][:5]
    numbers["seconds"] = round(seconds, 2)
    numbers["client_requests"] = sum(numbers["worker_operations"])
    checks = {
        "all operations completed": numbers["worker_errors"] == 0,
        "zero 429s": numbers["throttled"] == 0,
    }
    title = f"shared principal ({processes} processes x --rate-share {share:g}, {cap})"
    return ScenarioResult("shared_principal", title, all(checks.values()), checks, numbers)


def _workload_numbers(result: WorkloadResult) -> dict[str, Any]:
    windows = result.controller["windows"]
    return {
        "client_requests": result.operations,
        "units": result.units,
        "errors": result.errors[:5],
        "seconds": round(result.seconds, 2),
        "controller_throttles": result.controller["throttles"],
        "learned_cap": result.controller["cap"] if result.controller["learned_cap"] else None,
        "cap_source": result.controller["cap_source"],
        "window_mean": {k: v["mean"] for k, v in windows.items()},
        "window_min": {k: v["min"] for k, v in windows.items()},
        "window_max": {k: v["max"] for k, v in windows.items()},
        "wait_seconds": result.controller["wait_seconds"],
    }


# -- reporting ---------------------------------------------------------------------------------------


def markdown(results: Sequence[ScenarioResult]) -> str:
    lines = [
        "| scenario | requests | 429s | 429 % | rate while pending (req/s) | cap (req/s) | utilisation | seconds | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        n = r.numbers
        lines.append(
            f"| {r.title} | {n['requests']} | {n['throttled']} | {n['throttled_pct']:.2f} | "
            f"{n['accepted_rate']:.1f} | {n['cap_rate']:.1f} | {100 * n['utilisation']:.1f}% | "
            f"{n['seconds']} | {'pass' if r.passed else 'FAIL: ' + ', '.join(k for k, v in r.checks.items() if not v)} |"
        )
    return "\n".join(lines)


def plot(result: ScenarioResult, path: Path) -> Path:
    """Window size per key and request rate over time (scenario 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result.samples
    assert samples is not None
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    timeline = result.numbers["timeline"]
    ts = [row["t"] + 0.5 for row in timeline]
    top.step(
        ts,
        [row["requests"] - row["throttled"] for row in timeline],
        where="mid",
        label="accepted / s (mock)",
    )
    top.step(
        ts,
        [row["throttled"] for row in timeline],
        where="mid",
        label="429 / s (mock)",
        color="tab:red",
    )
    top.axhline(result.numbers["cap_rate"], linestyle="--", color="grey", label="cap")
    top.set_ylabel("requests per second")
    top.legend(loc="lower right")
    top.set_title("\n".join(textwrap.wrap(result.title, 90)), fontsize=10)
    for key, series in sorted(samples.windows.items()):
        bottom.plot(samples.t, series, label=f"window '{key}'")
    bottom.set_ylabel("AIMD window (concurrency)")
    bottom.set_xlabel("seconds since the workload started")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass(frozen=True, slots=True)
class Sizes:
    operations: int
    tasks: int
    cap: str


FULL = Sizes(operations=3000, tasks=8, cap="600/6s")
QUICK = Sizes(operations=400, tasks=6, cap="100/2s")


async def run_all(sizes: Sizes, which: Sequence[str], seed: int) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    ops, tasks, cap = sizes.operations, sizes.tasks, sizes.cap
    for name in which:
        if name == "1":
            results.append(
                await scenario_known_cap(operations=ops, tasks=tasks, cap=cap, seed=seed)
            )
        elif name == "2":
            results.append(
                await scenario_unknown_cap(operations=ops, tasks=tasks, cap=cap, seed=seed)
            )
        elif name in ("2b", "2c"):
            learning = "estimated" if name == "2b" else "aimd"
            results.append(
                await scenario_unknown_cap(
                    operations=ops, tasks=tasks, cap=cap, seed=seed, learning=learning
                )
            )
        elif name == "3":
            results.append(
                await scenario_shared_principal(operations=ops, tasks=tasks, cap=cap, seed=seed)
            )
    return results


def _worker_main(args: argparse.Namespace) -> int:
    async def go() -> WorkloadResult:
        return await run_workload(
            args.url,
            profile=args.profile,
            operations=args.operations,
            tasks=args.tasks,
            rate_limit=args.rate_limit,
            rate_share=args.rate_share,
            prefix=args.prefix,
            seed=args.seed,
        )

    result = trio.run(go)
    out = {
        "operations": result.operations,
        "units": result.units,
        "errors": result.errors,
        "seconds": round(result.seconds, 3),
        "controller": result.controller,
    }
    print(json.dumps(out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stress.ratelimit_scenarios", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="one process of the shared-principal scenario")
    worker.add_argument("--url", required=True)
    worker.add_argument("--profile", default="ghcr")
    worker.add_argument("--rate-limit", default=None)
    worker.add_argument("--rate-share", type=float, default=1.0)
    worker.add_argument("--operations", type=int, default=1000)
    worker.add_argument("--tasks", type=int, default=4)
    worker.add_argument("--prefix", default="w")
    worker.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="the small versions (as in the tests)")
    parser.add_argument(
        "--scenarios",
        default="1,2,2b,2c,3",
        help="comma list of 1, 2, 2b (cap estimated), 2c (AIMD only), 3",
    )
    parser.add_argument("--operations", type=int, default=None)
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--cap", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.command == "worker":
        return _worker_main(args)
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        args.operations or base.operations, args.tasks or base.tasks, args.cap or base.cap
    )
    which = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    wall = time.monotonic()
    results = trio.run(run_all, sizes, which, args.seed)
    report = {
        "sizes": asdict(sizes),
        "seed": args.seed,
        "wall_seconds": round(time.monotonic() - wall, 1),
        "scenarios": [r.summary() for r in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (args.out / f"ratelimit_scenarios{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(results)
    (args.out / f"ratelimit_scenarios{suffix}.md").write_text(table + "\n")
    for r in results:
        if r.name == "unknown_cap" and r.samples is not None:
            plot(r, args.out / f"ratelimit_scenario2{suffix}.png")
        if r.name == "unknown_cap_estimated" and r.samples is not None:
            plot(r, args.out / f"ratelimit_scenario2_estimated{suffix}.png")
        if r.name == "unknown_cap_aimd_only" and r.samples is not None:
            plot(r, args.out / f"ratelimit_scenario2_aimd_only{suffix}.png")
    print(json.dumps(report, indent=2))
    print()
    print(table)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
