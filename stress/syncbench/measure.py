"""Measuring one tool run: wall time, CPU and peak RSS of the process, and its requests as the
registries' access logs (stress/registries.py) counted them, so both tools have one witness.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stress.corpus import MANIFEST_ACCEPT, RegistryAuth
from stress.registries import LoggedRequest
from stress.syncbench.tools import ROOT, target_repo

TOOL_TIMEOUT = 900.0


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
    run.bytes_pushed = _bytes_pushed(dst, blob_sizes)
    gets = Counter(
        r.digest for r in src if r.kind in ("blob_get", "storage_get") and r.status in (200, 307)
    )
    gets.pop(None, None)
    run.source_blob_gets = sum(gets.values())
    run.duplicate_blob_gets = sum(n - 1 for n in gets.values() if n > 1)
    run.mounts = sum(1 for r in dst if r.kind == "mount" and r.status == 201 and _cross_repo(r))
    run.throttled = sum(1 for r in src + dst if r.status == 429)
    return run


def _bytes_pushed(target: Sequence[LoggedRequest], blob_sizes: Mapping[str, int]) -> int:
    pushed = 0
    for r in target:
        if r.bytes_in is not None:
            pushed += r.bytes_in
        elif r.kind == "upload_put" and r.status == 201:
            # docker-registry does not log request bodies: count the blob the upload completed.
            digest = next((p[7:] for p in r.query.split("&") if p.startswith("digest=")), "")
            pushed += blob_sizes.get(digest.replace("%3A", ":"), 0)
    return pushed


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
