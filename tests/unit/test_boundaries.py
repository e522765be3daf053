"""House rules that keep the layers honest (see STYLE.md)."""

from __future__ import annotations

import ast
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


def test_mock_and_client_count_the_same_request_kinds() -> None:
    """The mock's /_mock/stats kinds and ocync's client counters share one vocabulary, so a run's
    counts compare kind by kind; each side keeps its own list (the mock never imports ocync)."""
    from mockregistry.stats import KINDS
    from ocync.registry.profiles import REQUEST_KINDS

    assert KINDS == REQUEST_KINDS
