"""`python -m stress.sync_bench`: run the scenario groups, write stress/results/sync_bench.json
and sync_bench.md, print the Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stress.syncbench.report import checks, render_markdown
from stress.syncbench.scenarios import SCENARIO_TABLE, scenario_scale
from stress.syncbench.tools import tool_version

RESULTS = Path(__file__).resolve().parents[1] / "results"
DESCRIPTION = "`ocync sync` vs `skopeo sync --all`, side by side on the same registries."


def run_groups(
    names: Sequence[str], *, quick: bool, scale: Sequence[int] | None = None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for key in names:
        with tempfile.TemporaryDirectory(prefix=f"ocync-{key}-") as tmp:
            print(f"sync_bench: {key} ...", file=sys.stderr, flush=True)
            start = time.monotonic()
            if key == "sync_scale":
                results[key] = scenario_scale(quick, Path(tmp), scale)
            else:
                results[key] = SCENARIO_TABLE[key][1](quick, Path(tmp))
            results[key]["seconds"] = round(time.monotonic() - start, 1)
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stress.sync_bench", description=DESCRIPTION)
    parser.add_argument(
        "--quick", action="store_true", help="small corpora, scale 10 only (CI-sized)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIO_TABLE),
        default=[],
        help="run only this group (repeatable)",
    )
    parser.add_argument(
        "--scale", default="", metavar="N,N,...", help="repository counts for sync_scale"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scale = [int(x) for x in args.scale.split(",") if x.strip()] or None
    names = args.only or list(SCENARIO_TABLE)
    started = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results = run_groups(names, quick=args.quick, scale=scale)
    command = "python -m stress.sync_bench" + " ".join(
        ["", *(argv if argv is not None else sys.argv[1:])]
    )
    report = {
        "command": command.strip(),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "seconds": round(time.monotonic() - started, 1),
        "skopeo": tool_version(["skopeo", "--version"]),
        "checks": [dataclasses.asdict(c) | {"ok": c.ok} for c in checks(results)],
        "scenarios": results,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "sync_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(results, report["command"], load_at_start)
    (args.results_dir / "sync_bench.md").write_text(markdown)
    print(markdown)
    return 0
