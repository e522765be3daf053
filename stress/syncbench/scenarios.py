"""The sync benchmark's scenario groups and their corpora: docker-registry pair, ghcr-profile
mock, WAN-latency mocks, and the repository-count scale; `SCENARIO_TABLE` names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from stress.corpus import CorpusSpec, build_corpus
from stress.registries import DistributionProcess, MockRegistryProcess
from stress.syncbench.measure import ToolRun
from stress.syncbench.report import ratios
from stress.syncbench.sidebyside import Endpoint, SideBySide
from stress.syncbench.tools import TARGET_NAMESPACE, TOOLS

USER = "bench"
TOKEN = "bench-pat-0123456789"
GHCR_CAP = "600/6s"
GHCR_WINDOW_S = 6.0
COLD_SAMPLES = 3  # cold runs on the docker-registry pair (full size); the ratio is their median
DEFAULT_SCALE = (10, 100)

ScenarioGroup = Callable[[bool, Path], dict[str, Any]]


def pair_spec(quick: bool) -> CorpusSpec:
    """Multi-arch indexes with shared base layers, for the registry-pair scenarios."""
    return CorpusSpec(
        seed=606,
        repositories=4 if quick else 12,
        namespace="corpus",
        tags_per_repo=2 if quick else 4,
        platforms=("linux/amd64", "linux/arm64"),
        layers_per_image=3,
        layer_size=(16 * 1024, 256 * 1024),
        shared_base_layers=2,
    )


def wan_spec(quick: bool) -> CorpusSpec:
    return dataclasses.replace(
        pair_spec(quick), repositories=3 if quick else 6, tags_per_repo=2 if quick else 3
    )


def scale_spec(repositories: int) -> CorpusSpec:
    """Small single-platform images: the scale scenario measures per-repository overhead."""
    return CorpusSpec(
        seed=707,
        repositories=repositories,
        namespace="corpus",
        tags_per_repo=2,
        platforms=("linux/amd64",),
        layers_per_image=2,
        layer_size=(2 * 1024, 8 * 1024),
        shared_base_layers=1,
    )


@contextmanager
def _targets(
    make: Callable[[Path], AbstractContextManager[Endpoint]], workdir: Path, suffix: str = ""
) -> Iterator[dict[str, Endpoint]]:
    """A fresh target registry per tool, each in `workdir/t-<tool><suffix>`."""
    with ExitStack() as stack:
        yield {tool: stack.enter_context(make(workdir / f"t-{tool}{suffix}")) for tool in TOOLS}


def scenario_distribution(quick: bool, workdir: Path) -> dict[str, Any]:
    corpus = build_corpus(pair_spec(quick))
    with (
        DistributionProcess(workdir / "source") as source,
        _targets(DistributionProcess, workdir) as targets,
    ):
        bench = SideBySide("docker-registry -> docker-registry", workdir, corpus, source, targets)
        bench.seed()
        bench.phase("cold", verify=True)
        bench.phase("warm")
        bench.change_some_tags()
        bench.phase("partial")
        # More cold samples (fresh targets and cache) for a steadier wall-time ratio.
        for i in range(2, (1 if quick else COLD_SAMPLES) + 1):
            with _targets(DistributionProcess, workdir, f"-{i}") as fresh:
                bench.retarget(fresh, workdir / f"cache-{i}")
                bench.phase(f"cold#{i}")
        return bench.summary()


def warm_floor_spec(quick: bool) -> CorpusSpec:
    """Issue 14's warm-run corpus: 24 repositories x 2 multi-arch tags (4 x 2 quick)."""
    return dataclasses.replace(pair_spec(quick), repositories=4 if quick else 24, tags_per_repo=2)


def scenario_ghcr_mock(quick: bool, workdir: Path) -> dict[str, Any]:
    return _ghcr_pair(pair_spec(quick), workdir)


def scenario_warm_floor(quick: bool, workdir: Path) -> dict[str, Any]:
    """The warm-run floor (1 request per tag + 1 per repository + 2, both registries): warm
    with the default `artifacts.refresh: always`, then with `on_change`."""
    return _ghcr_pair(warm_floor_spec(quick), workdir, floor=True)


def _ghcr_pair(spec: CorpusSpec, workdir: Path, *, floor: bool = False) -> dict[str, Any]:
    corpus = build_corpus(spec)
    ghcr = [
        "--profile",
        "ghcr",
        "--auth",
        "token",
        "--user",
        f"{USER}:{TOKEN}",
        "--namespace",
        f"{USER}:{TARGET_NAMESPACE}",
        "--rate-limit",
        GHCR_CAP,
    ]
    with (
        MockRegistryProcess(workdir / "source", ["--profile", "generic"]) as source,
        _targets(partial(MockRegistryProcess, args=ghcr), workdir) as targets,
    ):
        bench = SideBySide(
            f"mock -> ghcr-profile mock (token auth, cap {GHCR_CAP})",
            workdir,
            corpus,
            source,
            targets,
            auth=(USER, TOKEN),
            profile="ghcr",
            rate_limit=GHCR_CAP,
            pause=GHCR_WINDOW_S + 0.5,  # each run starts with an empty rate window
        )
        bench.seed()
        bench.phase("cold", verify=True)
        bench.phase("warm")
        if floor:
            bench.retarget(targets, workdir / "cache", artifacts_refresh="on_change")
            bench.phase("warm-on_change")
            bench.extra["floor_requests"] = bench.tag_count + len(bench.expected) + 2
            return bench.summary()
        bench.change_some_tags()
        bench.phase("partial")
        return bench.summary()


def scenario_wan(quick: bool, workdir: Path, latency_ms: int = 20) -> dict[str, Any]:
    corpus = build_corpus(wan_spec(quick))
    args = ["--profile", "generic", "--latency", str(latency_ms)]
    with (
        MockRegistryProcess(workdir / "source", args) as source,
        _targets(partial(MockRegistryProcess, args=args), workdir) as targets,
    ):
        bench = SideBySide(
            f"WAN: generic mocks, --latency {latency_ms}", workdir, corpus, source, targets
        )
        bench.seed()
        bench.phase("cold", verify=True)
        bench.phase("warm")
        return bench.summary()


def scenario_scale(
    quick: bool, workdir: Path, sizes: Sequence[int] | None = None
) -> dict[str, Any]:
    sizes = tuple(sizes or ((10,) if quick else DEFAULT_SCALE))
    out: dict[str, Any] = {"name": "scale: docker-registry pair", "sizes": {}}
    runs: list[ToolRun] = []
    for n in sizes:
        corpus = build_corpus(scale_spec(n))
        sub = workdir / f"scale-{n}"
        with (
            DistributionProcess(sub / "source") as source,
            _targets(DistributionProcess, sub) as targets,
        ):
            bench = SideBySide(f"scale {n}", sub, corpus, source, targets)
            bench.seed()
            bench.phase("cold")
            bench.phase("warm")
            for run in bench.runs:
                run.phase = f"{run.phase}@{n}"
            runs += bench.runs
            out["sizes"][str(n)] = {
                "corpus": corpus.summary(),
                "ocync_peak_rss_mib": max(r.peak_rss_mib for r in bench.runs if r.tool == "ocync"),
                "skopeo_peak_rss_mib": max(
                    r.peak_rss_mib for r in bench.runs if r.tool == "skopeo"
                ),
                "ratios": ratios(
                    [dataclasses.replace(r, phase=r.phase.split("@")[0]) for r in bench.runs]
                ),
            }
    out["runs"] = [r.to_dict() for r in runs]
    out["ratios"] = {
        f"{k}@{n}": v for n, entry in out["sizes"].items() for k, v in entry["ratios"].items()
    }
    return out


SCENARIO_TABLE: dict[str, tuple[str, ScenarioGroup]] = {
    "sync_distribution": (
        "ocync sync vs skopeo sync --all, docker-registry -> docker-registry (cold/warm/partial)",
        scenario_distribution,
    ),
    "sync_ghcr_mock": (
        "ocync sync vs skopeo sync --all, mock -> ghcr-profile mock with token auth and a cap",
        scenario_ghcr_mock,
    ),
    "sync_warm_floor": (
        "ocync sync vs skopeo sync --all warm, mock -> ghcr-profile mock, 24 x 2 tags, "
        "artifacts.refresh always then on_change",
        scenario_warm_floor,
    ),
    "sync_wan": (
        "ocync sync vs skopeo sync --all between generic mocks with --latency 20",
        scenario_wan,
    ),
    "sync_scale": (
        "ocync sync vs skopeo sync --all on 10/100 repositories (docker-registry pair)",
        scenario_scale,
    ),
}
