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
``--quick`` runs the small versions the integration tests use. The workload and the
measurement are in stress/ratelimit_workload.py, scenario 3 in stress/ratelimit_shared.py.
"""

from __future__ import annotations

import argparse
import json
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from stress.ratelimit_shared import (
    SHARED_FULL,
    SHARED_QUICK,
    SharedSizes,
    scenario_shared_principal,
)
from stress.ratelimit_workload import USER, ScenarioResult, measured_workload

__all__ = [
    "SHARED_FULL",
    "SHARED_QUICK",
    "USER",
    "ScenarioResult",
    "main",
    "markdown",
    "plot",
    "run_all",
    "scenario_known_cap",
    "scenario_shared_principal",
    "scenario_unknown_cap",
]

RESULTS = Path(__file__).resolve().parent / "results"


async def scenario_known_cap(
    *, operations: int, tasks: int, cap: str, seed: int = 1
) -> ScenarioResult:
    numbers, result = await measured_workload(
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
    numbers, result = await measured_workload(
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
