"""Rate-limit scenario 3, a shared principal: real `ocync sync --rate-share F` processes at once
with one credential, each mirroring its share of a seeded source mock's repositories to one
capped ghcr-profile mock, which counts every request on its own timeline.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from mockregistry import MockOptions, serve_mock
from ocync.ratelimit.bucket import parse_rate
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from stress.ratelimit_workload import PASSWORD, USER, ScenarioResult, measure, mock_options
from stress.syncbench.tools import write_ocync_config

ROOT = Path(__file__).resolve().parents[1]


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
    corpus = build_corpus(shared_corpus_spec(sizes, seed))
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ocync-rl3-")))
        async with (
            serve_mock(MockOptions(profile="generic", seed=seed)) as source,
            serve_mock(mock_options("ghcr", sizes.cap, seed)) as target,
        ):
            await push_corpus(corpus, source.url)
            runs = _sync_processes(
                workdir, source.url, target.url, sorted(corpus.repos), sizes.cap, rate_share,
                processes, outputs,
            )  # fmt: skip
            target.reset_stats()
            seconds = await _run_at_once(runs, workdir)
            stats = target.stats()
    about = {"processes": processes, "rate_share": rate_share, "corpus": corpus.summary()}
    numbers = _shared_numbers(stats, sizes.cap, seconds, runs, about)
    control = rate_share * processes > 1  # the comparison: 429s expected, not a failure
    checks = {"every ocync sync exited 0": all(p.returncode == 0 for p in runs)}
    if not control:
        checks["zero 429s"] = numbers["throttled"] == 0
    title = (
        f"shared principal ({processes} x `ocync sync --rate-share {rate_share:g}`, {sizes.cap})"
    )
    name = "shared_principal_control" if control else "shared_principal"
    return ScenarioResult(name, title, all(checks.values()), checks, numbers)


def _sync_processes(
    workdir: Path,
    source: str,
    target: str,
    repos: Sequence[str],
    cap: str,
    rate_share: float,
    processes: int,
    outputs: Sequence[str],
) -> list[SyncProcess]:
    """One config and command per process; the repositories are dealt out round robin."""
    runs: list[SyncProcess] = []
    for i in range(processes):
        config = write_sync_config(
            workdir / f"sync{i}.yaml",
            source,
            target,
            repos[i::processes],
            workdir / f"cache{i}",
            cap,
        )
        flags = ["--json"] if outputs[i % len(outputs)] == "json" else ["-v"]
        command = [
            sys.executable, "-m", "ocync", "sync", "-c", str(config),
            "--rate-share", f"{rate_share:g}", *flags,
        ]  # fmt: skip
        runs.append(SyncProcess(i, command))
    return runs


async def _run_at_once(runs: Sequence[SyncProcess], workdir: Path) -> float:
    """Start every process together and wait for all; fills each `SyncProcess`, returns the
    seconds until the last one ended."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
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
    return trio.current_time() - started


def _shared_numbers(
    stats: dict[str, Any],
    cap: str,
    seconds: float,
    runs: Sequence[SyncProcess],
    about: dict[str, Any],
) -> dict[str, Any]:
    """The target mock's rates, `about` the run, each process's outcome and its controller
    statistics."""
    rate = parse_rate(cap)
    numbers = measure(stats, rate.count, rate.period, seconds)
    both, both_seconds = pending_utilisation(
        stats["timeline"], rate.count / rate.period, min(p.ended for p in runs)
    )
    reports = [p.report() for p in runs]
    numbers.update(about)
    numbers.update(
        {
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
    return numbers


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
