"""House rules that keep the layers honest (see STYLE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no python files under {package}"
    return files


@pytest.mark.parametrize("path", _files("mockregistry"), ids=lambda p: p.name)
def test_mockregistry_never_imports_ocync(path: Path) -> None:
    assert "ocync" not in _imports(path)


@pytest.mark.parametrize("path", _files("ocync/oci"), ids=lambda p: p.name)
def test_oci_core_is_sans_io(path: Path) -> None:
    assert not _imports(path) & {"trio", "httpx", "h11", "socket", "anyio"}


# The pure machines of rate control: ``now`` is a parameter, trio is the limiter's alone.
PURE_RATELIMIT = ("aimd", "backoff", "bucket", "caplearner", "gate", "signals", "statistics")


@pytest.mark.parametrize("module", PURE_RATELIMIT)
def test_ratelimit_machines_are_sans_io(module: str) -> None:
    path = ROOT / "ocync" / "ratelimit" / f"{module}.py"
    assert not _imports(path) & {"trio", "httpx", "h11", "socket", "anyio", "pydantic"}


def test_importing_the_pure_ratelimit_machines_loads_no_io_stack() -> None:
    modules = ", ".join(f"ocync.ratelimit.{m}" for m in PURE_RATELIMIT)
    code = f"import sys, {modules}; print(sorted({{'trio', 'httpx'}} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
