"""Run a rendered pod's container as a local process with the environment the kubelet would
give it: ``env`` (values and the Indexed Job's completion-index fieldRef) plus ``envFrom``
resolved from Secrets made by ``kubectl create secret ... --dry-run=client -o yaml``, and
``$(VAR)`` references in args expanded as the kubelet does (kubernetes: expansion.go)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REQUIRE_REAL

INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        msg = "kubectl is not on PATH (.ci/run checks for it)"
        if REQUIRE_REAL:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def kubectl_secret(name: str, literals: Mapping[str, str]) -> dict[str, Any]:
    """The Secret exactly as the guide makes it, printed instead of sent to a cluster."""
    argv = [kubectl(), "create", "secret", "generic", name]
    argv += [f"--from-literal={k}={v}" for k, v in literals.items()]
    argv += ["--dry-run=client", "-o", "yaml"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    secret: dict[str, Any] = yaml.safe_load(done.stdout)
    return secret


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def pod_environment(
    container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, Any]], *, completion_index: int | None
) -> dict[str, str]:
    """envFrom first, then env (which wins on a clash, as in Kubernetes)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["secretRef"]["name"]
        prefix = source.get("prefix", "")
        env.update({prefix + k: v for k, v in secret_data(secrets[ref]).items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), var["value"])
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == INDEX_ANNOTATION:
            assert completion_index is not None, "an Indexed Job's pod needs its completion index"
            env[var["name"]] = str(completion_index)
        else:
            raise AssertionError(f"no way to resolve env {var!r} outside a cluster")
    return env


def expand_args(args: list[str], env: Mapping[str, str]) -> list[str]:
    """``$(VAR)`` -> its value; an unknown reference stays as written (kubelet behaviour)."""
    return [_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in args]


def container_argv(container: Mapping[str, Any], entrypoint: list[str], env: Mapping[str, str]) -> list[str]:
    command = container.get("command") or entrypoint
    return [*command, *expand_args(list(container.get("args", [])), env)]


def volume_paths(container: Mapping[str, Any]) -> dict[str, Path]:
    return {m["name"]: Path(m["mountPath"]) for m in container["volumeMounts"]}


def process_environment(pod_env: Mapping[str, str], *, home: Path, tmp: Path) -> dict[str, str]:
    """What the image adds (PATH, HOME of the non-root user; TMPDIR is the /tmp emptyDir) and
    nothing of this test process's environment."""
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp)}
    return {**base, **pod_env}


def snapshot(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("*")}
