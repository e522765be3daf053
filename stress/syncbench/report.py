"""The sync benchmark's numbers: ocync/skopeo ratios, the targets checked against them, the
Markdown report, and the metrics `python -m stress.bench` shows for each scenario group.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stress.benchscenario import Metric
from stress.syncbench.measure import ToolRun
from stress.syncbench.tools import TOOLS

# The sync engine's design targets against `skopeo sync --all` (reported against, never assumed).
TARGET_COLD_REQUEST_RATIO = 0.55
TARGET_COLD_WALL_RATIO = 0.5
TARGET_WAN_WALL_RATIO = 0.25
TARGET_WARM_REQUESTS_PER_TAG = 2.0
TARGET_WARM_VS_SKOPEO = 0.1  # issue 14: a warm run 10x fewer requests than skopeo sync

_COLD_SAMPLE = r"cold(#\d+)?_{}_ratio"


def ratios(runs: Sequence[ToolRun]) -> dict[str, float]:
    """ocync / skopeo per phase (requests and wall), and ocync's warm requests per tag."""
    by = {(r.tool, r.phase): r for r in runs}
    out: dict[str, float] = {}
    for phase in dict.fromkeys(r.phase for r in runs):
        o, s = by.get(("ocync", phase)), by.get(("skopeo", phase))
        if o and s and s.requests and s.wall_s:
            out[f"{phase}_request_ratio"] = round(o.requests / s.requests, 3)
            out[f"{phase}_wall_ratio"] = round(o.wall_s / s.wall_s, 3)
    samples = sorted(v for k, v in out.items() if re.fullmatch(_COLD_SAMPLE.format("wall"), k))
    if len(samples) > 1:
        out["cold_wall_ratio_median"] = samples[len(samples) // 2]
        req = sorted(v for k, v in out.items() if re.fullmatch(_COLD_SAMPLE.format("request"), k))
        out["cold_request_ratio_median"] = req[len(req) // 2]
    for tool in TOOLS:
        warm = by.get((tool, "warm"))
        if warm and warm.tags:
            out[f"{tool}_warm_requests_per_tag"] = round(warm.requests / warm.tags, 2)
            out[f"{tool}_warm_target_requests_per_tag"] = round(warm.target_requests / warm.tags, 2)
            heads = warm.by_kind.get("manifest_head", 0) + warm.by_kind.get("manifest_get", 0)
            out[f"{tool}_warm_manifest_requests_per_tag"] = round(heads / warm.tags, 2)
    return out


@dataclass(frozen=True, slots=True)
class Check:
    scenario: str
    name: str
    value: float
    target: float
    unit: str = "x"

    @property
    def ok(self) -> bool:
        return self.value <= self.target


# (scenario group, ratio, label, target): the ratio's median over the cold samples when there
# are several, else the one cold run's.
_RATIO_CHECKS = (
    ("sync_distribution", "cold_request_ratio", "cold requests ocync/skopeo", TARGET_COLD_REQUEST_RATIO),
    ("sync_distribution", "cold_wall_ratio", "cold wall time ocync/skopeo", TARGET_COLD_WALL_RATIO),
    ("sync_wan", "cold_wall_ratio", "WAN cold wall time ocync/skopeo", TARGET_WAN_WALL_RATIO),
)  # fmt: skip

# (ToolRun field summed over ocync's runs, label, unit): each must be 0 in every group.
_OCYNC_TOTALS = (
    ("throttled", "ocync 429s", "n"),
    ("failed_images", "ocync failed tags", "n"),
    ("duplicate_blob_gets", "ocync duplicate blob GETs", "req"),
)


def checks(results: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    """The design targets, measured."""
    out: list[Check] = []
    for key, res in results.items():
        r = res.get("ratios", {})
        samples = sum(1 for k in r if re.fullmatch(_COLD_SAMPLE.format("wall"), k))
        how = f" (median of {samples} cold runs)" if samples > 1 else ""
        for group, ratio, label, target in _RATIO_CHECKS:
            if key == group and ratio in r:
                out.append(Check(key, label + how, r.get(f"{ratio}_median", r[ratio]), target))
        for name, value in r.items():
            if name.startswith("ocync_warm_requests_per_tag"):
                label = f"ocync {name.removeprefix('ocync_')}"
                out.append(Check(key, label, value, TARGET_WARM_REQUESTS_PER_TAG, "req"))
        ocync_runs = [run for run in res.get("runs", []) if run["tool"] == "ocync"]
        floor = res.get("floor_requests")  # issue 14: 1 per tag + 1 per repository + 2
        if floor is not None:
            for run in ocync_runs:
                if run["phase"].startswith("warm"):
                    label = f"ocync {run['phase']} requests (floor: tags + repositories + 2)"
                    out.append(Check(key, label, run["requests"], floor, "req"))
            for phase in ("warm", "warm-on_change"):
                if f"{phase}_request_ratio" in r:
                    label = f"{phase} requests ocync/skopeo"
                    out.append(Check(key, label, r[f"{phase}_request_ratio"], TARGET_WARM_VS_SKOPEO))
        if ocync_runs:
            for field_name, label, unit in _OCYNC_TOTALS:
                out.append(Check(key, label, sum(run[field_name] for run in ocync_runs), 0, unit))
    return out


def bench_metrics(key: str, result: Mapping[str, Any]) -> list[Metric]:
    """What `python -m stress.bench` reports for one group: wall and requests per run, checks."""
    metrics = []
    for r in result["runs"]:
        prefix = f"{r['tool']} {r['phase']}"
        metrics.append(Metric(f"{prefix} wall", r["wall_s"], "s", higher_is_better=False))
        metrics.append(Metric(f"{prefix} requests", r["requests"], "req", higher_is_better=False))
    for c in checks({key: result}):
        metrics.append(Metric(c.name, c.value, c.unit, c.target, higher_is_better=False))
    return metrics


# ---------------------------------------------------------------------------------------
# Markdown


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


def _runs_table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [
        "| scenario | phase | tool | wall s | CPU s | requests | src/dst | blob GETs | dup GETs | mounts "
        "| 429s | pulled MiB | pushed MiB | failed | RSS MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, res in results.items():
        for r in res["runs"]:
            lines.append(
                f"| {key} | {r['phase']} | {r['tool']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['requests']} | "
                f"{r['source_requests']}/{r['target_requests']} | {r['source_blob_gets']} | "
                f"{r['duplicate_blob_gets']} | {r['mounts']} | {r['throttled']} | {_mib(r['bytes_pulled'])} | "
                f"{_mib(r['bytes_pushed'])} | {r['failed_images']} | {r['peak_rss_mib']:.0f} |"
            )
    return lines


def _corpus_table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["", "| scenario | corpus |", "|---|---|"]
    for key, res in results.items():
        corpus = res.get("corpus") or {n: e["corpus"] for n, e in res.get("sizes", {}).items()}
        lines.append(f"| {key} | {json.dumps(corpus)} |")
    return lines


def _checks_table(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["", "| scenario | target | measured | limit | met |", "|---|---|---:|---:|:---:|"]
    for c in checks(results):
        lines.append(
            f"| {c.scenario} | {c.name} | {c.value:g} {c.unit} | <= {c.target:g} {c.unit} | "
            f"{'yes' if c.ok else 'no'} |"
        )
    return lines


def _notes(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """ocync's warm requests per tag broken down, and peak RSS against the repository count."""
    lines = []
    warm = []
    for key, res in results.items():
        for name, value in res.get("ratios", {}).items():
            if name.startswith("ocync_warm_manifest_requests_per_tag"):
                total = res["ratios"].get(name.replace("manifest_requests", "requests"))
                warm.append(
                    f"{key}{name.partition('@')[1]}{name.partition('@')[2]}: {total} = "
                    f"{value} manifest HEAD/GET + per-repository tags/list, tokens, pings"
                )
    if warm:
        lines += ["", "ocync warm requests per tag, broken down: " + "; ".join(warm) + "."]
    scale = results.get("sync_scale", {}).get("sizes", {})
    if scale:
        rss = ", ".join(
            f"{n} repos: ocync {e['ocync_peak_rss_mib']:.0f} / skopeo {e['skopeo_peak_rss_mib']:.0f}"
            for n, e in scale.items()
        )
        lines += ["", f"Peak RSS (MiB) against the number of repositories: {rss}."]
    return lines


def _cold_kinds(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["", "Requests by kind (cold):", ""]
    for key, res in results.items():
        for r in res["runs"]:
            if r["phase"] == "cold" or r["phase"].startswith("cold@"):
                kinds = ", ".join(f"{k} {v}" for k, v in r["by_kind"].items())
                lines.append(f"- {key} {r['phase']} {r['tool']}: {kinds}")
    return lines


def render_markdown(
    results: Mapping[str, Mapping[str, Any]], command: str, load: Sequence[float] = ()
) -> str:
    busy = f", load average {load[0]:.1f} at start" if load else ""
    lines = [
        f"Command: `{command}` ({os.cpu_count()} CPUs{busy}). Requests and bytes are counted from the "
        "registries' access logs (source + target); `failed` = tags whose target digest is wrong "
        "afterwards.",
        "",
    ]
    lines += _runs_table(results)
    lines += _corpus_table(results)
    lines += _checks_table(results)
    lines += _notes(results)
    lines += _cold_kinds(results)
    return "\n".join(lines) + "\n"
