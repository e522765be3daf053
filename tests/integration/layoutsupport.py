"""Helpers of the OCI layout tests: configs, the ``ocync`` CLI as a subprocess, and the
checks a layout must pass (every blob file hashes to its name, index.json names only what
is present)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import trio

ENV = {**os.environ, "PYTHONPATH": str(Path.cwd())}


def export_config(path: Path, src: str, layout: Path, cache: Path, repos: list[str],
                  *, kind: str = "oci-layout") -> Path:
    """registry ``src`` -> layout (or archive) ``layout``, one mapping per repository."""
    maps = "".join(f"  - from: {r}\n" for r in repos)
    path.write_text(
        f"global:\n  cache_dir: {cache}\n  max_concurrent_transfers: 3\n"
        f"registries:\n  src:\n    url: {src}\n  carry:\n    type: {kind}\n    path: {layout}\n"
        "defaults:\n  source: src\n  targets: carry\n"
        f"mappings:\n{maps}"
    )
    return path


def import_config(path: Path, layout: Path, dst: str, cache: Path, repos: dict[str, str],
                  *, kind: str = "oci-layout", dst_extra: str = "") -> Path:
    """layout (or archive) -> registry ``dst``: ``repos`` maps from -> to."""
    maps = "".join(f"  - from: {a}\n    to: {b}\n" for a, b in repos.items())
    path.write_text(
        f"global:\n  cache_dir: {cache}\n  max_concurrent_transfers: 3\n"
        f"registries:\n  carry:\n    type: {kind}\n    path: {layout}\n  dst:\n    url: {dst}\n{dst_extra}"
        "defaults:\n  source: carry\n  targets: dst\n"
        f"mappings:\n{maps}"
    )
    return path


async def ocync(*args: str) -> tuple[int, str]:
    """``ocync ARGS`` as a subprocess: (exit code, stdout + stderr)."""
    done = await trio.run_process(
        [sys.executable, "-m", "ocync", *args], capture_stdout=True, capture_stderr=True,
        check=False, env=ENV,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def layout_problems(root: Path) -> list[str]:
    """What is wrong with the layout at ``root``: blob files that do not hash to their
    name, index.json entries (and their children) whose content is missing."""
    problems = []
    for path in (root / "blobs").glob("*/*"):
        actual = hashlib.new(path.parent.name, path.read_bytes()).hexdigest()
        if actual != path.name:
            problems.append(f"{path}: hashes to {actual}")

    def present(digest: str, size: int) -> bool:
        alg, _, hexpart = digest.partition(":")
        path = root / "blobs" / alg / hexpart
        return path.is_file() and path.stat().st_size == size

    def check(desc: dict[str, object]) -> None:
        digest, size = str(desc["digest"]), int(str(desc["size"]))
        if not present(digest, size):
            problems.append(f"{digest}: named but missing")
            return
        alg, _, hexpart = digest.partition(":")
        doc = json.loads((root / "blobs" / alg / hexpart).read_bytes())
        for child in doc.get("manifests", []):
            check(child)
        for blob in [doc["config"]] if "config" in doc else []:
            if not present(blob["digest"], blob["size"]):
                problems.append(f"{blob['digest']}: config missing")
        for blob in doc.get("layers", []):
            if not present(blob["digest"], blob["size"]):
                problems.append(f"{blob['digest']}: layer missing")

    for entry in json.loads((root / "index.json").read_bytes())["manifests"]:
        check(entry)
    return problems


def ref_names(root: Path) -> list[str]:
    index = json.loads((root / "index.json").read_bytes())
    return sorted(
        e.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for e in index["manifests"]
    )
