"""`ocync sync` vs `skopeo sync --all` on the same registries (issue 6's benchmark).

Scenarios (each tool gets its own, fresh target registry; the source is shared):
  sync_distribution_pair  two Debian docker-registry instances: cold, warm, partial (~5% of
                          tags changed); requests counted from the registries' access logs
  sync_mock_pair          source mock -> ghcr-profile mock (token auth, 600/6s cap, blob
                          redirects): requests by kind, 429s, from the mocks' stats
  sync_wan                both tools between generic mocks with --latency 20 (remote
                          registries are tens of milliseconds away)
Recorded: wall time, requests (and by kind where the registry tells), source blob GETs,
duplicate blob GETs, mounts, 429s, failed images, peak RSS of the tool's process.

Run alone: `python -m stress.sync_bench [--quick]` (prints a table and writes
stress/results/sync_bench.json); `stress.bench` registers the same scenarios when
"stress.sync_bench" is in its SCENARIO_MODULES.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from stress.corpus import CorpusSpec, build_corpus, push_corpus
from stress.mockproc import MockProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "bench-pat-0123456789"
GHCR_CAP = "600/6s"


def corpus_spec(quick: bool, repositories: int | None = None) -> CorpusSpec:
    return CorpusSpec(
        seed=606,
        repositories=repositories or (6 if quick else 20),
        namespace="corpus",
        tags_per_repo=3 if quick else 5,
        layers_per_image=3,
        layer_size=(16 * 1024, 256 * 1024),
        shared_base_layers=2,
        referrers_per_image=0,
    )


# ---------------------------------------------------------------------------------------
# Registries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Distribution:
    """Debian's docker-registry with its access log in a file (requests by method and path)."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.log = root / "access.log"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self._log_handle = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self._log_handle, stderr=self._log_handle)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._mark = 0

    def requests(self) -> Counter[str]:
        """Requests since the last call, by kind (access-log lines)."""
        self._log_handle.flush()
        lines = self.log.read_bytes().splitlines()
        new, self._mark = lines[self._mark :], len(lines)
        kinds: Counter[str] = Counter()
        for raw in new:
            line = raw.decode(errors="replace")
            m = re.search(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (/v2/[^ ]*) HTTP', line)
            if m:
                kinds[_kind(m.group(1), m.group(2))] += 1
        return kinds

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_handle.close()


def _kind(method: str, path: str) -> str:
    path = path.split("?", 1)[0] + ("?mount" if "mount=" in path else "")
    if path in ("/v2/", "/v2"):
        return "ping"
    if "/blobs/uploads" in path:
        if method == "POST":
            return "mount" if path.endswith("?mount") else "upload_post"
        return {"PATCH": "upload_patch", "PUT": "upload_put", "GET": "upload_get"}.get(method, "upload_delete")
    if "/blobs/" in path:
        return "blob_head" if method == "HEAD" else "blob_get"
    if "/manifests/" in path:
        return {"HEAD": "manifest_head", "GET": "manifest_get", "PUT": "manifest_put"}.get(method, "manifest_delete")
    if path.endswith("/tags/list"):
        return "tags_list"
    if "/referrers/" in path:
        return "referrers"
    return "other"


# ---------------------------------------------------------------------------------------
# Tools


@dataclass
class ToolRun:
    tool: str
    phase: str
    wall: float
    exit_code: int
    peak_rss_mib: float
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    source_blob_gets: int = 0
    duplicate_blob_gets: int = 0
    throttled: int = 0
    failed_images: int = 0
    mounts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
    "sys.stdout.buffer.write(r.stdout)\n"
    "sys.stderr.buffer.write(r.stderr)\n"
    "sys.stderr.write(f'\\nPEAK_RSS_KIB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
    "sys.exit(r.returncode)\n"
)


def _measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float, str, str]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *cmd],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=1800,
    )
    wall = time.monotonic() - start
    m = re.search(r"PEAK_RSS_KIB=(\d+)", proc.stderr)
    rss = int(m.group(1)) / 1024 if m else 0.0
    return wall, proc.returncode, rss, proc.stdout, proc.stderr


def ocync_config(path: Path, src: str, dst: str, repos: list[str], cache: Path, *,
                 dst_profile: str | None = None, dst_auth: bool = False, cap: str | None = None) -> None:
    lines = [
        "global:", f"  cache_dir: {cache}", "  max_concurrent_transfers: 8",
        "registries:", "  src:", f"    url: {src}", "  dst:", f"    url: {dst}",
    ]
    if dst_profile:
        lines.append(f"    profile: {dst_profile}")
    if dst_auth:
        lines.append(f"    credentials: {{username: bench, password: {TOKEN}}}")
    if cap:
        lines.append(f"    rate_limit: {cap}")
    lines += ["defaults:", "  source: src", "  targets: dst", "  tags: {glob: '*'}", "mappings:"]
    for repo in repos:
        lines.append(f"  - from: {repo}\n    to: mirror/{repo.split('/', 1)[1]}")
    path.write_text("\n".join(lines) + "\n")


def run_ocync(config: Path, phase: str) -> ToolRun:
    wall, code, rss, out, err = _measured([sys.executable, "-m", "ocync", "sync", "-c", str(config), "--json"])
    run = ToolRun("ocync", phase, wall, code, rss)
    try:
        doc = json.loads(out)
    except ValueError:
        print(err[-2000:], file=sys.stderr)
        return run
    summary = doc["summary"]
    run.failed_images = summary["images_failed"]
    run.mounts = summary["blobs_mounted"]
    run.throttled = summary["throttled"]
    dup = doc.get("plan", {}).get("duplicate_blob_pulls", 0)
    run.duplicate_blob_gets = int(dup)
    return run


def skopeo_yaml(path: Path, src_host: str, repos: list[str]) -> None:
    images = "\n".join(f"    {r}: []" for r in repos)
    path.write_text(f"{src_host}:\n  tls-verify: false\n  images:\n{images}\n")


def run_skopeo(yaml_file: Path, dst: str, phase: str, *, creds: str | None = None) -> ToolRun:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise RuntimeError("skopeo is not installed (apt-get install skopeo)")
    cmd = [skopeo, "sync", "--all", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
           "--retry-times", "3", str(yaml_file), f"{dst}/mirror"]
    if creds:
        cmd[2:2] = ["--dest-creds", creds]
    wall, code, rss, _out, err = _measured(cmd)
    run = ToolRun("skopeo", phase, wall, code, rss)
    if code != 0:
        run.failed_images = -1  # skopeo stops at the first failure; the count is unknown
        print(f"skopeo exited {code}: {err.strip().splitlines()[-1:]}", file=sys.stderr)
    return run


def _fill(run: ToolRun, src_kinds: Counter[str] | dict[str, int], dst_kinds: Counter[str] | dict[str, int],
          unique_blobs: int | None, throttled: int = 0) -> ToolRun:
    by_kind: Counter[str] = Counter()
    by_kind.update({k: v for k, v in src_kinds.items() if v})
    by_kind.update({k: v for k, v in dst_kinds.items() if v})
    run.by_kind = dict(sorted(by_kind.items()))
    run.requests = sum(by_kind.values())
    run.source_blob_gets = int(src_kinds.get("blob_get", 0)) + int(src_kinds.get("storage_get", 0))
    if unique_blobs is not None and run.tool == "skopeo":
        run.duplicate_blob_gets = max(run.source_blob_gets - unique_blobs, 0)
    if throttled:
        run.throttled = throttled
    if run.tool == "skopeo":
        run.mounts = int(dst_kinds.get("mount", 0))
    return run


def _partial_update(src_url: str, spec: CorpusSpec) -> int:
    """Re-tag ~5% of the tags with new content (a different corpus seed)."""
    changed = max(1, round(spec.repositories * spec.tags_per_repo * 0.05))
    fresh = build_corpus(dataclasses.replace(spec, seed=spec.seed + 1, repositories=changed, tags_per_repo=1))
    trio.run(push_corpus, fresh, src_url)
    return changed


# ---------------------------------------------------------------------------------------
# Scenarios


def scenario_distribution_pair(quick: bool, workdir: Path) -> dict[str, Any]:
    spec = corpus_spec(quick)
    corpus = build_corpus(spec)
    repos = sorted(corpus.repos)
    regs = {name: Distribution(workdir / name) for name in ("source", "ocync", "skopeo")}
    runs: list[ToolRun] = []
    try:
        trio.run(push_corpus, corpus, regs["source"].url)
        regs["source"].requests()
        cfg = workdir / "ocync.yaml"
        ocync_config(cfg, regs["source"].host, regs["ocync"].host, repos, workdir / "cache")
        yml = workdir / "skopeo.yaml"
        skopeo_yaml(yml, regs["source"].host, repos)

        def phase(name: str) -> None:
            for tool in ("ocync", "skopeo"):
                run = run_ocync(cfg, name) if tool == "ocync" else run_skopeo(yml, regs["skopeo"].host, name)
                runs.append(_fill(run, regs["source"].requests(), regs[tool].requests(),
                                  len(corpus.blobs) if name == "cold" else None))

        phase("cold")
        phase("warm")
        changed = _partial_update(regs["source"].url, spec)
        regs["source"].requests()
        phase("partial")
    finally:
        for reg in regs.values():
            reg.stop()
    return _summarise("distribution pair", corpus, runs, {"changed_tags": changed})


def scenario_mock_pair(quick: bool, workdir: Path, *, latency: int | None = None) -> dict[str, Any]:
    spec = corpus_spec(quick)
    corpus = build_corpus(spec)
    repos = sorted(corpus.repos)
    wan = latency is not None
    lat = ["--latency", str(latency)] if wan else []
    target_args = (
        lat + ["--profile", "generic"] if wan else
        ["--profile", "ghcr", "--auth", "token", "--user", f"bench:{TOKEN}", "--namespace",
         "bench:mirror", "--rate-limit", GHCR_CAP]
    )
    runs: list[ToolRun] = []
    with (
        MockProcess(["--profile", "generic", *lat]) as source,
        MockProcess(target_args) as t_ocync,
        MockProcess(target_args) as t_skopeo,
    ):
        trio.run(push_corpus, corpus, source.url)
        _reset(source)
        host = {m: m.url.split("://", 1)[1] for m in (source, t_ocync, t_skopeo)}
        cfg = workdir / "ocync.yaml"
        ocync_config(cfg, host[source], host[t_ocync], repos, workdir / "cache",
                     dst_profile=None if wan else "ghcr", dst_auth=not wan, cap=None if wan else GHCR_CAP)
        yml = workdir / "skopeo.yaml"
        skopeo_yaml(yml, host[source], repos)

        def phase(name: str) -> None:
            for tool, target in (("ocync", t_ocync), ("skopeo", t_skopeo)):
                if tool == "ocync":
                    run = run_ocync(cfg, name)
                else:
                    run = run_skopeo(yml, host[target], name, creds=None if wan else f"bench:{TOKEN}")
                s, d = source.stats(), target.stats()
                _reset(source)
                _reset(target)
                runs.append(_fill(run, s["by_kind"], d["by_kind"],  # type: ignore[arg-type]
                                  len(corpus.blobs) if name == "cold" else None,
                                  throttled=int(d["throttled"])))  # type: ignore[call-overload]

        phase("cold")
        if not wan:
            phase("warm")
            changed = _partial_update(source.url, spec)
            _reset(source)
            phase("partial")
    return _summarise("WAN (latency 20 ms)" if wan else "mock -> ghcr-profile mock", corpus, runs,
                      {} if wan else {"changed_tags": changed})


def _reset(mock: MockProcess) -> None:
    import httpx

    httpx.post(f"{mock.url}/_mock/reset", timeout=10)


def _summarise(name: str, corpus: Any, runs: list[ToolRun], extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "corpus": corpus.summary(), **extra, "runs": [r.to_dict() for r in runs]}
    by = {(r.tool, r.phase): r for r in runs}
    o, s = by.get(("ocync", "cold")), by.get(("skopeo", "cold"))
    if o and s and s.requests and s.wall:
        out["cold_request_ratio"] = round(o.requests / s.requests, 3)
        out["cold_wall_ratio"] = round(o.wall / s.wall, 3)
    w = by.get(("ocync", "warm"))
    if w:
        out["warm_requests_per_tag"] = round(w.requests / len(corpus.images), 2)
    return out


SCENARIO_TABLE: dict[str, tuple[str, Callable[[bool, Path], dict[str, Any]]]] = {
    "sync_distribution_pair": ("ocync sync vs skopeo sync --all, docker-registry -> docker-registry",
                               scenario_distribution_pair),
    "sync_mock_pair": ("ocync sync vs skopeo sync --all, mock -> ghcr-profile mock (token, cap)",
                       scenario_mock_pair),
    "sync_wan": ("ocync sync vs skopeo sync --all between mocks with --latency 20",
                 lambda quick, workdir: scenario_mock_pair(quick, workdir, latency=20)),
}


def render(results: dict[str, Any]) -> str:
    lines = ["| scenario | tool | phase | wall s | requests | blob GETs | dup GETs | mounts | 429s | failed | RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, res in results.items():
        for r in res["runs"]:
            lines.append(
                f"| {key} | {r['tool']} | {r['phase']} | {r['wall']:.2f} | {r['requests']} | "
                f"{r['source_blob_gets']} | {r['duplicate_blob_gets']} | {r['mounts']} | {r['throttled']} | "
                f"{r['failed_images']} | {r['peak_rss_mib']:.0f} |"
            )
    for key, res in results.items():
        ratios = {k: res[k] for k in ("cold_request_ratio", "cold_wall_ratio", "warm_requests_per_tag") if k in res}
        lines.append(f"\n{key}: {res['corpus']} {ratios}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress.sync_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpus (CI-sized)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIO_TABLE), default=[])
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for key in args.only or list(SCENARIO_TABLE):
        with tempfile.TemporaryDirectory(prefix=f"ocync-{key}-") as tmp:
            print(f"running {key} ...", file=sys.stderr, flush=True)
            results[key] = SCENARIO_TABLE[key][1](args.quick, Path(tmp))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync_bench.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


def _register() -> None:
    """Add the scenarios to stress.bench's table when it imports this module."""
    try:
        from stress import bench
    except ImportError:  # pragma: no cover
        return
    for key, (description, func) in SCENARIO_TABLE.items():
        if key in bench.SCENARIOS:
            continue

        def run(ctx: Any, func: Callable[[bool, Path], dict[str, Any]] = func) -> Any:
            res = func(ctx.quick, ctx.workdir)
            metrics = []
            for r in res["runs"]:
                prefix = f"{r['tool']}_{r['phase']}"
                metrics.append(bench.Metric(f"{prefix}_wall", r["wall"], "s", higher_is_better=False))
                metrics.append(bench.Metric(f"{prefix}_requests", r["requests"], "req", higher_is_better=False))
            if "cold_request_ratio" in res and key == "sync_distribution_pair":
                metrics.append(bench.Metric("cold_request_ratio", res["cold_request_ratio"], "x", 0.55, False))
                metrics.append(bench.Metric("cold_wall_ratio", res["cold_wall_ratio"], "x", 0.5, False))
            if "cold_wall_ratio" in res and key == "sync_wan":
                metrics.append(bench.Metric("cold_wall_ratio", res["cold_wall_ratio"], "x", 0.25, False))
            if "warm_requests_per_tag" in res:
                metrics.append(bench.Metric("warm_requests_per_tag", res["warm_requests_per_tag"], "req", 2.0, False))
            return bench.ScenarioResult(metrics=metrics, details=res)

        bench.SCENARIOS[key] = bench.Scenario(key, description, run)


if "stress.bench" in sys.modules:
    _register()

if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    raise SystemExit(main())
