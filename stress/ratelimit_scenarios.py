"""The rate controller's acceptance scenarios, run against the mock registry through ocync's client.

1. known cap: GHCR profile capped at 600/6s, >= 3000 registry operations (small blob uploads and
   copies, manifest reads) from several tasks sharing one principal -> zero 429s and a request
   rate >= 90% of the cap while work is pending (measured from the mock's stats timeline);
2. unknown cap: generic profile, a cap the client is not configured with -> every operation
   completes, 429s <= 2% of requests, utilisation >= 80%. The mock's 429 message announces
   the cap (as GHCR's does), so the scenario also runs with the announcement ignored (2b: the
   controller estimates the cap from its first hinted 429) and, for comparison, with neither
   (2c: only the AIMD windows and the hint pauses act);
3. shared principal: two real ``ocync sync -c FILE --rate-share 0.5`` processes at once with the
   same credentials, each mirroring its own repositories from a seeded source mock to one capped
   ghcr-profile mock -> zero 429s, both exit 0 (3c, the comparison: both with --rate-share 1.0,
   which together exceed the cap).

``python -m stress.ratelimit_scenarios`` prints JSON and a Markdown table and writes them, with
a PNG of scenario 2's window size and request rate over time, to ``stress/results/``.
``--quick`` runs the small versions the integration tests use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import tempfile
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
from stress.corpus import Corpus, CorpusSpec, build_corpus, push_corpus
from stress.syncbench.tools import write_ocync_config

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


# Each task's image (from the corpus planner: a config and one small layer), read by the workers.
BASE_TAG = "base"


def _base_images(tasks: int, seed: int) -> Corpus:
    """One single-platform image per task; the workload is about requests, not bytes."""
    spec = CorpusSpec(
        seed=seed,
        repositories=tasks,
        namespace="",
        tags_per_repo=1,
        platforms=("linux/amd64",),
        layers_per_image=1,
        layer_size=(512, 512),
        shared_base_layers=0,
    )
    return build_corpus(spec)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _push_blob(
    client: RegistryClient, repo: str, data: bytes, media_type: str = mt.OCI_LAYER
) -> Descriptor:
    """Upload with a fresh session per attempt: a throttled *streamed* PUT cannot be replayed
    by the client, so the transfer restarts (as the engine's blob copies do)."""
    desc = Descriptor(media_type, Digest.of(data), len(data))
    for attempt in range(1, 6):
        try:
            await upload_blob(client, repo, desc, _chunks(data))
            return desc
        except OcyncError as exc:
            if not exc.temporary or attempt == 5:
                raise
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Workload:
    """What the workers and the sampler share: the two clients, the goal, and the tallies."""

    source: RegistryClient
    target: RegistryClient
    operations: int
    errors: list[str] = field(default_factory=list)
    samples: Samples = field(default_factory=Samples)
    units: int = 0
    base: int = 0  # requests made before the workload started (seeding)
    start: float = 0.0

    def made(self) -> int:
        """Registry API requests so far (the storage host's blob GETs are not API calls)."""
        total = 0
        for client in (self.source, self.target):
            stats = client.statistics()
            total += stats.requests - stats.by_kind.get("storage_get", 0)
        return total

    def done(self) -> int:
        """Requests of the workload itself (seeding excluded)."""
        return self.made() - self.base


def _controller(
    url: str, profile: str, rate_limit: str | None, rate_share: float, learning: str, seed: int
) -> PrincipalController | None:
    """The principal's controller for ``learning`` other than "announced" (None: the default)."""
    if learning == "announced":
        return None
    return PrincipalController(
        f"{url}|{USER}",
        window_groups=profile_named(profile).window_groups,
        cap=parse_rate(rate_limit) if rate_limit else None,
        rate_share=rate_share,
        adopt_announced_cap=False,
        estimate_cap=learning == "estimated",
        seed=seed,
    )


async def _seed_images(client: RegistryClient, images: Corpus, prefix: str) -> list[str]:
    """Push each planned image to its task's source repository, tagged BASE_TAG."""
    repos: list[str] = []
    for t, image in enumerate(images.images):
        repo = f"{USER}/{prefix}-src-{t}"
        for digest in image.blobs:
            blob = images.blobs[digest]
            await _push_blob(client, repo, blob.data, blob.media_type)
        top = images.manifests[image.digest]
        await client.put_manifest(repo, BASE_TAG, top.data, top.media_type)
        repos.append(repo)
    return repos


async def _worker(work: _Workload, src: str, dst: str, rng: random.Random) -> None:
    """Repeat one unit until the workload has made its requests: upload a small blob, copy it
    to a second repository, read the image's manifest twice, HEAD the copy."""
    source, target = work.source, work.target
    while work.done() < work.operations:
        try:
            desc = await _push_blob(source, src, rng.randbytes(rng.randint(256, 4096)))
            await copy_blob_to(source, src, desc, target, dst)
            await source.get_manifest(src, BASE_TAG)
            await target.head_blob(dst, desc.digest)
            await source.get_manifest(src, BASE_TAG)
            work.units += 1
        except Exception as exc:  # reported, the scenario then fails
            work.errors.append(f"{type(exc).__name__}: {exc}")
            if len(work.errors) > 20:
                raise


async def _sampler(
    work: _Workload, controller: PrincipalController, every: float, cancel: trio.CancelScope
) -> None:
    """Snapshot the controller every ``every`` seconds (for the plot) until ``cancel``."""
    samples = work.samples
    with cancel:
        while True:
            stats = controller.statistics()
            samples.t.append(trio.current_time() - work.start)
            samples.throttles.append(stats.throttles)
            samples.requests.append(work.done())
            for key, key_stats in stats.windows.items():
                series = samples.windows.setdefault(key, [math.nan] * (len(samples.t) - 1))
                series.append(key_stats.window.window)
            for series in samples.windows.values():
                if len(series) < len(samples.t):
                    series.append(series[-1] if series else math.nan)
            await trio.sleep(every)


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
    repeat a unit (`_worker`) until the client has made ``operations`` requests."""
    settings = ClientSettings(
        auth=AuthSettings(kind="basic", username=USER, password=PASSWORD),
        profile=profile,
        rate_limit=rate_limit,
        rate_share=rate_share,
        insecure=True,
    )
    registry = ControllerRegistry(rate_share=rate_share)
    controller = _controller(url, profile, rate_limit, rate_share, learning, seed)
    async with (
        RegistryClient(
            url, settings, controllers=registry, controller=controller, seed=seed
        ) as source,
        RegistryClient(
            url, settings, controllers=registry, controller=controller, seed=seed + 1
        ) as target,
    ):
        assert source.controller is target.controller, "one principal, one controller"
        work = _Workload(source, target, operations)
        # One image per task (its requests count as operations too).
        bases = await _seed_images(source, _base_images(tasks, seed), prefix)
        if on_start is not None:
            on_start()
        work.base = work.made()
        work.start = trio.current_time()
        cancel = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sampler, work, source.controller, sample_every, cancel)
            async with trio.open_nursery() as workers:
                for t in range(tasks):
                    dst = f"{USER}/{prefix}-dst-{t}"
                    workers.start_soon(_worker, work, bases[t], dst, random.Random(seed * 1000 + t))
            cancel.cancel()
        seconds = trio.current_time() - work.start
        return WorkloadResult(
            operations=work.done(),
            units=work.units,
            errors=work.errors,
            seconds=seconds,
            client={
                "source": source.statistics().to_dict(),
                "target": target.statistics().to_dict(),
            },
            controller=source.controller.statistics().to_dict(),
            samples=work.samples,
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


async def _measured_workload(
    profile: str, cap: str, seed: int, **workload: Any
) -> tuple[dict[str, Any], WorkloadResult]:
    """`run_workload(**workload)` against a fresh token-auth mock enforcing ``cap``: the mock's
    measures (counted from the workload's start) with the workload's numbers, and its result."""
    rate = parse_rate(cap)
    async with serve_mock(_mock_options(profile, cap, seed)) as mock:
        result = await run_workload(
            mock.url, profile=profile, seed=seed, on_start=mock.reset_stats, **workload
        )
        numbers = measure(mock.stats(), rate.count, rate.period, result.seconds)
    numbers.update(_workload_numbers(result))
    return numbers, result


async def scenario_known_cap(
    *, operations: int, tasks: int, cap: str, seed: int = 1
) -> ScenarioResult:
    numbers, result = await _measured_workload(
        "ghcr", cap, seed, operations=operations, tasks=tasks, rate_limit=cap, prefix="known"
    )
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
    numbers, result = await _measured_workload(
        "generic",
        cap,
        seed,
        operations=operations,
        tasks=tasks,
        rate_limit=None,
        prefix="unknown",
        learning=learning,
    )
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


@dataclass(frozen=True, slots=True)
class SharedSizes:
    """Scenario 3: the corpus on the source mock and the target mock's cap."""

    repositories: int  # split between the processes, round robin
    tags_per_repo: int
    layers_per_image: int
    cap: str


SHARED_FULL = SharedSizes(repositories=32, tags_per_repo=5, layers_per_image=3, cap="600/6s")
SHARED_QUICK = SharedSizes(repositories=8, tags_per_repo=3, layers_per_image=2, cap="120/4s")


def shared_corpus_spec(sizes: SharedSizes, seed: int) -> CorpusSpec:
    """Small single-platform images (a few KiB per layer, one base layer shared by all): the
    scenario is about request counts, not bytes."""
    return CorpusSpec(
        seed=seed,
        repositories=sizes.repositories,
        namespace="corpus",
        tags_per_repo=sizes.tags_per_repo,
        platforms=("linux/amd64",),
        layers_per_image=sizes.layers_per_image,
        layer_size=(512, 4096),
        shared_base_layers=1,
    )


def write_sync_config(
    path: Path, source: str, target: str, repos: Sequence[str], cache_dir: Path, cap: str
) -> Path:
    """One process's config: an anonymous source, the capped ghcr-profile target with the one
    shared credential (basic: the PAT is exchanged for a bearer token, as on GHCR) and its cap
    stated (``rate_limit``, as GHCR documents 2000/60s; the mock's is smaller to keep it short)."""
    write_ocync_config(
        path,
        source,
        target,
        repos,
        cache_dir,
        profile="ghcr",
        auth=(USER, PASSWORD),
        rate_limit=cap,
        namespace=USER,
    )
    return path


@dataclass(slots=True)
class SyncProcess:
    """One `ocync sync` run of scenario 3: its command, exit code, output and when it ended."""

    index: int
    command: list[str]
    returncode: int = -1
    stdout: str = ""
    stderr: str = ""
    ended: float = 0.0  # seconds since the mock's stats were reset

    def report(self) -> dict[str, Any] | None:
        """The `--json` report, or None (text output, or no JSON)."""
        if "--json" not in self.command:
            return None
        try:
            doc = json.loads(self.stdout)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


def pending_utilisation(
    timeline: Sequence[dict[str, int]], cap_rate: float, until: float
) -> tuple[float, int]:
    """Accepted requests per second against the cap over the whole seconds from the first
    second with a request (excluded: it is partial) up to ``until`` (exclusive, partial second
    left out). Returns (utilisation, seconds measured)."""
    active = [row["t"] for row in timeline if row["requests"]]
    if not active:
        return 0.0, 0
    rows = [row for row in timeline if active[0] < row["t"] < math.floor(until)]
    if not rows:
        return 0.0, 0
    accepted = sum(row["requests"] - row["throttled"] for row in rows)
    return round(accepted / len(rows) / cap_rate, 4), len(rows)


async def scenario_shared_principal(
    *,
    sizes: SharedSizes = SHARED_QUICK,
    rate_share: float = 0.5,
    processes: int = 2,
    outputs: Sequence[str] = ("json", "json"),
    seed: int = 1,
    workdir: Path | None = None,
) -> ScenarioResult:
    """``processes`` real ``ocync sync -c FILE --rate-share F`` processes at once, each
    mirroring its own repositories from an uncapped source mock to one capped ghcr-profile
    mock with the same credentials (one principal there). ``outputs[i]`` is "json" (the run
    prints ``--json``) or "verbose" (``-v``: the text report, controller statistics on stderr).
    With ``rate_share`` 1.0 (the control) the processes together would exceed the cap."""
    rate = parse_rate(sizes.cap)
    corpus = build_corpus(shared_corpus_spec(sizes, seed))
    repos = sorted(corpus.repos)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ocync-rl3-")))
        async with (
            serve_mock(MockOptions(profile="generic", seed=seed)) as source,
            serve_mock(_mock_options("ghcr", sizes.cap, seed)) as target,
        ):
            await push_corpus(corpus, source.url)
            runs: list[SyncProcess] = []
            for i in range(processes):
                config = write_sync_config(
                    workdir / f"sync{i}.yaml",
                    source.url,
                    target.url,
                    repos[i::processes],
                    workdir / f"cache{i}",
                    sizes.cap,
                )
                mode = outputs[i % len(outputs)]
                flags = ["--json"] if mode == "json" else ["-v"]
                command = [
                    sys.executable, "-m", "ocync", "sync", "-c", str(config),
                    "--rate-share", f"{rate_share:g}", *flags,
                ]  # fmt: skip
                runs.append(SyncProcess(i, command))
            env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
            target.reset_stats()
            started = trio.current_time()

            async def run(proc: SyncProcess) -> None:
                done = await trio.run_process(
                    proc.command,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    env=env,
                    cwd=str(workdir),
                )
                proc.ended = trio.current_time() - started
                proc.returncode = done.returncode
                proc.stdout = done.stdout.decode(errors="replace")
                proc.stderr = done.stderr.decode(errors="replace")

            async with trio.open_nursery() as nursery:
                for proc in runs:
                    nursery.start_soon(run, proc)
            seconds = trio.current_time() - started
            stats = target.stats()
    numbers = measure(stats, rate.count, rate.period, seconds)
    cap_rate = rate.count / rate.period
    both, both_seconds = pending_utilisation(
        stats["timeline"], cap_rate, min(p.ended for p in runs)
    )
    reports = [p.report() for p in runs]
    numbers.update(
        {
            "processes": processes,
            "rate_share": rate_share,
            "corpus": corpus.summary(),
            "commands": [" ".join(p.command[1:]) for p in runs],
            "exit_codes": [p.returncode for p in runs],
            "process_seconds": [round(p.ended, 2) for p in runs],
            "seconds": round(seconds, 2),
            "per_principal": stats.get("per_principal", {}),
            "utilisation_both_running": both,
            "seconds_both_running": both_seconds,
            "errors": [line for p in runs for line in p.stderr.splitlines() if "error" in line][:5],
            "process_reports": [_sync_summary(r) for r in reports],
            "stderr_tails": [p.stderr[-1500:] for p in runs if p.returncode != 0],
        }
    )
    # Controller statistics of each process for the target principal: from --json's
    # "controllers", or from -v's stderr lines ("  NAME: {json}").
    numbers["controllers"] = [
        _target_controller(r) if r is not None else _verbose_controller(p.stderr)
        for p, r in zip(runs, reports, strict=True)
    ]
    control = rate_share * processes > 1  # the comparison: 429s expected, not a failure
    checks = {"every ocync sync exited 0": all(p.returncode == 0 for p in runs)}
    if not control:
        checks["zero 429s"] = numbers["throttled"] == 0
    title = (
        f"shared principal ({processes} x `ocync sync --rate-share {rate_share:g}`, {sizes.cap})"
    )
    name = "shared_principal_control" if control else "shared_principal"
    return ScenarioResult(name, title, all(checks.values()), checks, numbers)


def _sync_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    summary = report.get("summary", {})
    keep = ("images_synced", "images_failed", "requests", "throttled", "elapsed")
    return {k: summary.get(k) for k in keep}


def _target_controller(report: dict[str, Any]) -> dict[str, Any] | None:
    """The controller of the capped target's principal in a --json report (None if absent)."""
    for stats in report.get("controllers", {}).values():
        controller = stats.get("controller") if isinstance(stats, dict) else None
        if isinstance(controller, dict) and controller.get("cap"):
            return controller
    return None


def _verbose_controller(stderr: str) -> dict[str, Any] | None:
    """The capped principal's controller from ``ocync sync -v``'s ``  NAME: {json}`` lines."""
    for line in stderr.splitlines():
        name, sep, rest = line.strip().partition(": ")
        if not sep or not rest.startswith("{"):
            continue
        try:
            controller = json.loads(rest)
        except ValueError:
            continue
        if isinstance(controller, dict) and controller.get("cap"):
            return controller
    return None


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


async def run_all(
    sizes: Sizes, which: Sequence[str], seed: int, shared: SharedSizes = SHARED_FULL
) -> list[ScenarioResult]:
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
        elif name in ("3", "3c"):
            results.append(
                await scenario_shared_principal(
                    sizes=shared, rate_share=0.5 if name == "3" else 1.0, seed=seed
                )
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stress.ratelimit_scenarios", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="the small versions (as in the tests)")
    parser.add_argument(
        "--scenarios",
        default="1,2,2b,2c,3,3c",
        help="comma list of 1, 2, 2b (cap estimated), 2c (AIMD only), 3, 3c (share 1.0)",
    )
    parser.add_argument("--operations", type=int, default=None)
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--cap", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        args.operations or base.operations, args.tasks or base.tasks, args.cap or base.cap
    )
    which = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    wall = time.monotonic()
    shared = SHARED_QUICK if args.quick else SHARED_FULL
    results = trio.run(run_all, sizes, which, args.seed, shared)
    report = {
        "sizes": asdict(sizes),
        "shared_sizes": asdict(shared),
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
