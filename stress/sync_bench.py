"""`ocync sync` vs `skopeo sync --all`, side by side on the same registries (issue 6's benchmark).

Scenario groups (each tool gets its own fresh target registry; the source is shared and both
tools run one after the other, ocync first, in every phase):
  sync_distribution  two Debian docker-registry 2.8 instances: cold, warm (nothing changed),
                     partial (~5% of tags re-pushed with new content at the source)
  sync_ghcr_mock     source mock -> ghcr-profile mock (token auth, rate cap, blob redirects,
                     mounts only inside one namespace): cold, warm, partial
  sync_wan           both tools between generic mocks with --latency 20: cold, warm
  sync_scale         docker-registry pair with 10, 100 (and on request 1000) repositories:
                     cold, warm, and ocync's peak RSS against the number of repositories
Every request is counted from the registries' own access logs (stress/registries.py), so
both tools are measured by the same witness: requests by kind, bytes, source blob GETs,
duplicate blob GETs (the same digest fetched more than once), cross-repository mounts answered
201, 429s. A tag is "failed" when, after the run, the target's manifest HEAD does not answer
the source digest. Peak RSS and CPU time are the tool process's own (getrusage via wait4 in a
small wrapper). The docker-registry pair repeats the cold run on fresh targets (COLD_SAMPLES)
and reports the median ratio; on the ghcr-profile mock every run starts with an empty rate
window (the bench waits one window first).

skopeo runs as a user would run it for a set of repositories: one process,
`skopeo --insecure-policy sync --all --preserve-digests --keep-going --src yaml --dest docker
SRC.yaml DST/mirror` (without --scoped it keeps the last path component: corpus/repo0 ->
mirror/repo0), which is the mapping the ocync config uses.

Run alone: `python -m stress.sync_bench [--quick] [--only NAME] [--scale 10,100,1000]`; writes
stress/results/sync_bench.json and sync_bench.md. `python -m stress.bench` runs the same
groups when "stress.sync_bench" is in its SCENARIO_MODULES.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import httpx
import trio

from stress.corpus import (
    MANIFEST_ACCEPT,
    Corpus,
    CorpusSpec,
    RegistryAuth,
    build_corpus,
    push_corpus,
    verify_corpus,
)
from stress.registries import DistributionProcess, LoggedRequest, MockRegistryProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TOOLS = ("ocync", "skopeo")
USER = "bench"
TOKEN = "bench-pat-0123456789"
GHCR_CAP = "600/6s"
GHCR_WINDOW_S = 6.0
TARGET_NAMESPACE = "mirror"
TOOL_TIMEOUT = 900.0
COLD_SAMPLES = 3  # cold runs on the docker-registry pair (full size); the ratio is their median

# Targets from issue 6 (reported against, never assumed).
TARGET_COLD_REQUEST_RATIO = 0.55
TARGET_COLD_WALL_RATIO = 0.5
TARGET_WAN_WALL_RATIO = 0.25
TARGET_WARM_REQUESTS_PER_TAG = 2.0


# ---------------------------------------------------------------------------------------
# Corpora


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


def target_repo(repo: str, namespace: str = TARGET_NAMESPACE) -> str:
    """Where both tools put a source repository (skopeo sync without --scoped keeps the basename)."""
    return f"{namespace}/{repo.rsplit('/', 1)[-1]}"


# ---------------------------------------------------------------------------------------
# Measuring one tool run


class Endpoint(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def url(self) -> str: ...

    def take(self) -> list[LoggedRequest]: ...


@dataclass
class ToolRun:
    tool: str
    phase: str
    wall_s: float
    exit_code: int
    peak_rss_mib: float
    tags: int = 0
    cpu_s: float = 0.0  # user + system CPU seconds of the tool process
    requests: int = 0
    source_requests: int = 0
    target_requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    source_by_kind: dict[str, int] = field(default_factory=dict)
    target_by_kind: dict[str, int] = field(default_factory=dict)
    bytes_pulled: int = 0  # response bytes served by the source
    bytes_pushed: int = 0  # request bytes received by the target (blob sizes on docker-registry)
    source_blob_gets: int = 0
    duplicate_blob_gets: int = 0
    mounts: int = 0  # cross-repository mounts answered 201 (self-mount probes not counted)
    throttled: int = 0  # 429s from either registry
    failed_images: int = 0  # tags whose target digest is not the source's after the run
    reported_failed: int | None = None  # what the tool itself said (ocync --json)
    verify_problems: int | None = None  # full content check (cold only)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Measured:
    wall: float
    exit_code: int
    peak_rss_mib: float
    cpu_s: float
    stdout: str
    stderr: str


# Linux keeps a process's ru_maxrss across fork+exec: a tool forked straight from this
# (large) process would report at least this process's RSS. A tiny wrapper (python -S, a few
# MiB) forks the tool instead and reports the tool's own wall time and ru_maxrss.
_WRAPPER = """
import os, subprocess, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
start = time.monotonic()
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.monotonic() - start
with open(report, "w") as fh:
    fh.write(f"{wall} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = TOOL_TIMEOUT
) -> Measured:
    """Run `cmd`: its wall time, exit code, output and peak RSS (ru_maxrss of that process)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".txt") as report,
    ):
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _WRAPPER, report.name, *cmd],
            stdout=out,
            stderr=err,
            env=dict(env) if env else None,
            cwd=ROOT,
            start_new_session=True,  # on a timeout, the wrapper and the tool go together
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.monotonic() - start
        fields = Path(report.name).read_text().split()
        rss_kib, cpu = 0, 0.0
        if len(fields) == 3:
            wall, rss_kib, cpu = float(fields[0]), int(fields[1]), float(fields[2])
        out.seek(0)
        err.seek(0)
        return Measured(
            wall=wall,
            exit_code=proc.returncode,
            peak_rss_mib=rss_kib / 1024,  # Linux: KiB
            cpu_s=cpu,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def tally(
    run: ToolRun,
    source: Iterable[LoggedRequest],
    target: Iterable[LoggedRequest],
    blob_sizes: Mapping[str, int],
) -> ToolRun:
    """Fill `run`'s request counts from the two registries' logs of that run."""
    src, dst = list(source), list(target)
    src_kinds = Counter(r.kind for r in src)
    dst_kinds = Counter(r.kind for r in dst)
    run.source_by_kind = dict(sorted(src_kinds.items()))
    run.target_by_kind = dict(sorted(dst_kinds.items()))
    run.by_kind = dict(sorted((src_kinds + dst_kinds).items()))
    run.source_requests, run.target_requests = len(src), len(dst)
    run.requests = len(src) + len(dst)
    run.bytes_pulled = sum(r.bytes_out for r in src)
    pushed = 0
    for r in dst:
        if r.bytes_in is not None:
            pushed += r.bytes_in
        elif r.kind == "upload_put" and r.status == 201:
            # docker-registry does not log request bodies: count the blob the upload completed.
            digest = next((p[7:] for p in r.query.split("&") if p.startswith("digest=")), "")
            pushed += blob_sizes.get(digest.replace("%3A", ":"), 0)
    run.bytes_pushed = pushed
    gets = Counter(
        r.digest for r in src if r.kind in ("blob_get", "storage_get") and r.status in (200, 307)
    )
    gets.pop(None, None)
    run.source_blob_gets = sum(gets.values())
    run.duplicate_blob_gets = sum(n - 1 for n in gets.values() if n > 1)
    run.mounts = sum(1 for r in dst if r.kind == "mount" and r.status == 201 and _cross_repo(r))
    run.throttled = sum(1 for r in src + dst if r.status == 429)
    return run


def _cross_repo(request: LoggedRequest) -> bool:
    """A mount from another repository (not a self-mount used as an existence probe)."""
    params = dict(p.partition("=")[::2] for p in request.query.split("&"))
    source = params.get("from", "").replace("%2F", "/").replace("%2f", "/")
    return bool(source) and source != request.repository


def failed_tags(
    url: str, expected: Mapping[str, Mapping[str, str]], auth: tuple[str, str] | None
) -> list[str]:
    """Tags (`repo:tag`, target names) whose manifest at the target is not the expected digest."""
    failed: list[str] = []
    client_auth = RegistryAuth(*auth) if auth else None
    with httpx.Client(base_url=url, auth=client_auth, timeout=30) as client:
        for repo, tags in expected.items():
            for tag, digest in tags.items():
                dst = target_repo(repo)
                for attempt in range(1, 31):
                    resp = client.head(
                        f"/v2/{dst}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
                    )
                    if resp.status_code != 429:  # the tool may have left the window full
                        break
                    time.sleep(min(0.2 * attempt, 2.0))
                if resp.status_code != 200 or resp.headers.get("docker-content-digest") != digest:
                    failed.append(f"{dst}:{tag}")
    return failed


# ---------------------------------------------------------------------------------------
# The tools


def write_ocync_config(
    path: Path,
    source: str,
    target: str,
    repos: Sequence[str],
    cache: Path,
    *,
    profile: str | None = None,
    auth: tuple[str, str] | None = None,
    rate_limit: str | None = None,
    namespace: str = TARGET_NAMESPACE,
) -> None:
    """An `ocync sync` config: every repo of `source` into `namespace/<basename>` on `target`."""
    lines = [
        "global:",
        f"  cache_dir: {cache}",
        "registries:",
        "  src:",
        f"    url: {source}",
        "  dst:",
        f"    url: {target}",
    ]
    if profile:
        lines.append(f"    profile: {profile}")
    if auth:
        lines.append(f"    credentials: {{username: {auth[0]}, password: {auth[1]}}}")
    if rate_limit:
        lines.append(f"    rate_limit: {rate_limit}")
    lines += ["defaults:", "  source: src", "  targets: dst", "mappings:"]
    lines += [f"  - {{from: {repo}, to: {target_repo(repo, namespace)}}}" for repo in repos]
    path.write_text("\n".join(lines) + "\n")


def write_skopeo_yaml(path: Path, source: str, repos: Sequence[str]) -> None:
    images = "\n".join(f"    {repo}: []" for repo in repos)  # [] = every tag
    path.write_text(f"{source}:\n  tls-verify: false\n  images:\n{images}\n")


def ocync_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "ocync", "sync", "-c", str(config), "--json"]


def skopeo_command(yaml_file: Path, target: str, auth: tuple[str, str] | None) -> list[str]:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise RuntimeError("skopeo is not installed (apt-get install skopeo)")
    cmd = [
        skopeo,
        "--insecure-policy",
        "sync",
        "--all",
        "--preserve-digests",
        "--keep-going",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        "--retry-times",
        "3",
    ]
    if auth:
        cmd += ["--dest-creds", f"{auth[0]}:{auth[1]}"]
    return [*cmd, str(yaml_file), f"{target}/{TARGET_NAMESPACE}"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("NO_COLOR", "1")
    return env


# ---------------------------------------------------------------------------------------
# One scenario group: a source, one target per tool, a corpus, phases


class SideBySide:
    """Runs ocync then skopeo for each phase against the same source and its own target."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        corpus: Corpus,
        source: Endpoint,
        targets: Mapping[str, Endpoint],
        *,
        auth: tuple[str, str] | None = None,
        profile: str | None = None,
        rate_limit: str | None = None,
        pause: float = 0.0,
    ) -> None:
        self.name = name
        self.pause = pause  # seconds to wait before each tool run (a rate window to drain)
        self.corpus = corpus
        self.source = source
        self.targets = targets
        self.auth = auth
        self.runs: list[ToolRun] = []
        self.expected: dict[str, dict[str, str]] = {
            repo: dict(tags) for repo, tags in corpus.repos.items()
        }
        self.sizes: dict[str, int] = {d: b.size for d, b in corpus.blobs.items()}
        self.extra: dict[str, Any] = {}
        self.workdir = workdir
        self._target_settings: dict[str, Any] = {
            "profile": profile,
            "auth": auth,
            "rate_limit": rate_limit,
        }
        self.ocync_config = workdir / "ocync.yaml"
        self.retarget(targets, workdir / "cache")
        self.skopeo_yaml = workdir / "skopeo.yaml"
        write_skopeo_yaml(self.skopeo_yaml, source.host, sorted(self.expected))

    def retarget(self, targets: Mapping[str, Endpoint], cache: Path) -> None:
        """Point both tools at other (fresh) targets; ocync gets `cache` as its cache_dir."""
        self.targets = targets
        write_ocync_config(
            self.ocync_config,
            self.source.host,
            targets["ocync"].host,
            sorted(self.expected),
            cache,
            **self._target_settings,
        )

    def seed(self) -> None:
        trio.run(push_corpus, self.corpus, self.source.url)
        self.source.take()

    @property
    def tag_count(self) -> int:
        return sum(len(tags) for tags in self.expected.values())

    def phase(self, phase: str, *, verify: bool = False) -> None:
        for tool in TOOLS:
            target = self.targets[tool]
            if tool == "ocync":
                cmd = ocync_command(self.ocync_config)
            else:
                cmd = skopeo_command(self.skopeo_yaml, target.host, self.auth)
            print(f"  {self.name} {phase}: {tool} ...", file=sys.stderr, flush=True)
            time.sleep(self.pause)
            got = measure(cmd, env=_env())
            run = ToolRun(
                tool,
                phase,
                round(got.wall, 3),
                got.exit_code,
                round(got.peak_rss_mib, 1),
                tags=self.tag_count,
                cpu_s=round(got.cpu_s, 2),
            )
            tally(run, self.source.take(), target.take(), self.sizes)
            if tool == "ocync":
                try:
                    doc = json.loads(got.stdout)
                    run.reported_failed = int(doc["summary"]["images_failed"])
                except (ValueError, KeyError, TypeError):
                    run.note = _last_line(got.stderr)
                else:
                    reasons = [
                        i.get("reason")
                        for i in doc.get("images", [])
                        if i.get("status") == "failed"
                    ]
                    reasons += doc.get("errors", [])
                    if run.reported_failed and reasons:
                        run.note = str(reasons[0])[:200]
            elif got.exit_code != 0:
                run.note = _last_line(got.stderr)
            failed = failed_tags(target.url, self.expected, self.auth)
            run.failed_images = len(failed)
            if verify:
                problems = trio.run(self._verify, target.url)
                run.verify_problems = len(problems)
                if problems and not run.note:
                    run.note = problems[0][:200]
            target.take()  # the checks' own requests are not the tool's
            self.runs.append(run)

    async def _verify(self, url: str) -> list[str]:
        user, password = self.auth if self.auth else (None, None)
        return await verify_corpus(
            self.corpus,
            url,
            username=user,
            password=password,
            repo_map={repo: target_repo(repo) for repo in self.expected},
        )

    def change_some_tags(self, share: float = 0.05) -> int:
        """Re-push ~`share` of the tags with new content (tag v0.0 of the first repositories)."""
        spec = self.corpus.spec
        changed = max(1, round(self.tag_count * share))
        changed = min(changed, spec.repositories)
        fresh = build_corpus(
            dataclasses.replace(spec, seed=spec.seed + 1, repositories=changed, tags_per_repo=1)
        )
        trio.run(push_corpus, fresh, self.source.url)
        self.source.take()
        for repo, tags in fresh.repos.items():
            self.expected[repo].update(tags)
        self.sizes.update({d: b.size for d, b in fresh.blobs.items()})
        self.extra["changed_tags"] = changed
        return changed

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "corpus": self.corpus.summary(),
            **self.extra,
            "runs": [r.to_dict() for r in self.runs],
        }
        out["ratios"] = ratios(self.runs)
        return out


def ratios(runs: Sequence[ToolRun]) -> dict[str, float]:
    """ocync / skopeo per phase (requests and wall), and ocync's warm requests per tag."""
    by = {(r.tool, r.phase): r for r in runs}
    out: dict[str, float] = {}
    for phase in dict.fromkeys(r.phase for r in runs):
        o, s = by.get(("ocync", phase)), by.get(("skopeo", phase))
        if o and s and s.requests and s.wall_s:
            out[f"{phase}_request_ratio"] = round(o.requests / s.requests, 3)
            out[f"{phase}_wall_ratio"] = round(o.wall_s / s.wall_s, 3)
    samples = sorted(v for k, v in out.items() if re.fullmatch(r"cold(#\d+)?_wall_ratio", k))
    if len(samples) > 1:
        out["cold_wall_ratio_median"] = samples[len(samples) // 2]
        req = sorted(v for k, v in out.items() if re.fullmatch(r"cold(#\d+)?_request_ratio", k))
        out["cold_request_ratio_median"] = req[len(req) // 2]
    for tool in TOOLS:
        warm = by.get((tool, "warm"))
        if warm and warm.tags:
            out[f"{tool}_warm_requests_per_tag"] = round(warm.requests / warm.tags, 2)
            out[f"{tool}_warm_target_requests_per_tag"] = round(warm.target_requests / warm.tags, 2)
            heads = warm.by_kind.get("manifest_head", 0) + warm.by_kind.get("manifest_get", 0)
            out[f"{tool}_warm_manifest_requests_per_tag"] = round(heads / warm.tags, 2)
    return out


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# ---------------------------------------------------------------------------------------
# Scenario groups


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


def scenario_ghcr_mock(quick: bool, workdir: Path) -> dict[str, Any]:
    corpus = build_corpus(pair_spec(quick))
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


DEFAULT_SCALE = (10, 100)


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


SCENARIO_TABLE: dict[str, tuple[str, Callable[[bool, Path], dict[str, Any]]]] = {
    "sync_distribution": (
        "ocync sync vs skopeo sync --all, docker-registry -> docker-registry (cold/warm/partial)",
        scenario_distribution,
    ),
    "sync_ghcr_mock": (
        "ocync sync vs skopeo sync --all, mock -> ghcr-profile mock with token auth and a cap",
        scenario_ghcr_mock,
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


# ---------------------------------------------------------------------------------------
# Targets and rendering


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


def checks(results: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    """Issue 6's targets, measured."""
    out: list[Check] = []
    for key, res in results.items():
        r = res.get("ratios", {})
        if key == "sync_distribution" and "cold_request_ratio" in r:
            n = sum(1 for k in r if re.fullmatch(r"cold(#\d+)?_wall_ratio", k))
            how = f" (median of {n} cold runs)" if n > 1 else ""
            req = r.get("cold_request_ratio_median", r["cold_request_ratio"])
            wall = r.get("cold_wall_ratio_median", r["cold_wall_ratio"])
            out.append(
                Check(key, f"cold requests ocync/skopeo{how}", req, TARGET_COLD_REQUEST_RATIO)
            )
            out.append(
                Check(key, f"cold wall time ocync/skopeo{how}", wall, TARGET_COLD_WALL_RATIO)
            )
        if key == "sync_wan" and "cold_wall_ratio" in r:
            out.append(
                Check(
                    key,
                    "WAN cold wall time ocync/skopeo",
                    r["cold_wall_ratio"],
                    TARGET_WAN_WALL_RATIO,
                )
            )
        for name, value in r.items():
            if name.startswith("ocync_warm_requests_per_tag"):
                out.append(
                    Check(
                        key,
                        f"ocync {name.removeprefix('ocync_')}",
                        value,
                        TARGET_WARM_REQUESTS_PER_TAG,
                        "req",
                    )
                )
        ocync_runs = [run for run in res.get("runs", []) if run["tool"] == "ocync"]
        if ocync_runs:
            for field_name, label in (
                ("throttled", "ocync 429s"),
                ("failed_images", "ocync failed tags"),
            ):
                total = sum(run[field_name] for run in ocync_runs)
                out.append(Check(key, label, total, 0, "n"))
            out.append(
                Check(
                    key,
                    "ocync duplicate blob GETs",
                    sum(run["duplicate_blob_gets"] for run in ocync_runs),
                    0,
                    "req",
                )
            )
    return out


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


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
    lines += [
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
    lines += ["", "| scenario | corpus |", "|---|---|"]
    for key, res in results.items():
        corpus = res.get("corpus") or {n: e["corpus"] for n, e in res.get("sizes", {}).items()}
        lines.append(f"| {key} | {json.dumps(corpus)} |")
    lines += ["", "| scenario | target | measured | limit | met |", "|---|---|---:|---:|:---:|"]
    for c in checks(results):
        lines.append(
            f"| {c.scenario} | {c.name} | {c.value:g} {c.unit} | <= {c.target:g} {c.unit} | "
            f"{'yes' if c.ok else 'no'} |"
        )
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
    lines += ["", "Requests by kind (cold):", ""]
    for key, res in results.items():
        for r in res["runs"]:
            if r["phase"] == "cold" or r["phase"].startswith("cold@"):
                kinds = ", ".join(f"{k} {v}" for k, v in r["by_kind"].items())
                lines.append(f"- {key} {r['phase']} {r['tool']}: {kinds}")
    return "\n".join(lines) + "\n"


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stress.sync_bench", description=__doc__.splitlines()[0]
    )
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
    args = parser.parse_args(argv)
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
        "skopeo": _version(["skopeo", "--version"]),
        "checks": [dataclasses.asdict(c) | {"ok": c.ok} for c in checks(results)],
        "scenarios": results,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "sync_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(results, report["command"], load_at_start)
    (args.results_dir / "sync_bench.md").write_text(markdown)
    print(markdown)
    return 0


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except OSError:
        return "not installed"


# ---------------------------------------------------------------------------------------
# Registration in stress.bench


def register(bench: Any) -> None:
    """Add the groups to `bench.SCENARIOS` (stress/bench.py's table) as bench.Scenario entries."""
    for key, (description, func) in SCENARIO_TABLE.items():
        if key in bench.SCENARIOS:
            continue

        def run(
            ctx: Any, key: str = key, func: Callable[[bool, Path], dict[str, Any]] = func
        ) -> Any:
            workdir = Path(ctx.workdir) / key
            workdir.mkdir(parents=True, exist_ok=True)
            res = func(ctx.quick, workdir)
            metrics = []
            for r in res["runs"]:
                prefix = f"{r['tool']} {r['phase']}"
                metrics.append(
                    bench.Metric(f"{prefix} wall", r["wall_s"], "s", higher_is_better=False)
                )
                metrics.append(
                    bench.Metric(f"{prefix} requests", r["requests"], "req", higher_is_better=False)
                )
            for c in checks({key: res}):
                metrics.append(
                    bench.Metric(c.name, c.value, c.unit, c.target, higher_is_better=False)
                )
            return bench.ScenarioResult(metrics=metrics, details=res)

        bench.SCENARIOS[key] = bench.Scenario(key, description, run)


def _bench_module() -> Any:
    """stress.bench, also when it runs as `python -m stress.bench` (then it is __main__)."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name == "stress.bench":
        return main_module
    if "stress.bench" in sys.modules:
        return sys.modules["stress.bench"]
    return None


if (_bench := _bench_module()) is not None:
    register(_bench)

if __name__ == "__main__":
    raise SystemExit(main())
