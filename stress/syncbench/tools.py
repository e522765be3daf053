"""The two tools the sync benchmark compares: their configs, command lines and environment.

Both mirror a source repository `corpus/repoN` into `mirror/repoN` on their own target:
skopeo's `sync` without `--scoped` keeps the last path component, and ocync's config says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("ocync", "skopeo")
TARGET_NAMESPACE = "mirror"


def target_repo(repo: str, namespace: str = TARGET_NAMESPACE) -> str:
    """Where both tools put a source repository (skopeo sync without --scoped keeps the basename)."""
    return f"{namespace}/{repo.rsplit('/', 1)[-1]}"


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
    artifacts_refresh: str | None = None,
) -> None:
    """An `ocync sync` config: every repo of `source` into `namespace/<basename>` on `target`
    (`artifacts_refresh`: `defaults.artifacts.refresh`, else ocync's default)."""
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
    lines += ["defaults:", "  source: src", "  targets: dst"]
    if artifacts_refresh:
        lines.append(f"  artifacts: {{refresh: {artifacts_refresh}}}")
    lines.append("mappings:")
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


def tool_env() -> dict[str, str]:
    """This environment, with the checkout on PYTHONPATH (for `python -m ocync`) and no colour."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("NO_COLOR", "1")
    return env


def tool_version(cmd: list[str]) -> str:
    """What `cmd` (e.g. `skopeo --version`) prints, or "not installed"."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except OSError:
        return "not installed"
