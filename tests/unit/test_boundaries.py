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


# The registry's pure pieces: the request rules, origins, the request ledger, credentials
# and the token flow (the client sends the token request).
_PURE_REGISTRY = ["credentials.py", "exchange.py", "origin.py", "requeststats.py", "tokens.py"]


@pytest.mark.parametrize("name", _PURE_REGISTRY)
def test_registry_request_rules_are_sans_io(name: str) -> None:
    """No I/O and no clock reads: ``now`` is a parameter (h11's Connection is the model)."""
    assert not _imports(ROOT / "ocync" / "registry" / name) & {"trio", "httpx", "h11", "socket", "anyio", "time"}


def _imported_modules(path: Path) -> set[str]:
    """Full dotted names of absolute imports (``from ocync import registry`` too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


_OUTSIDE_CONFIG = [p for p in _files("ocync") if (ROOT / "ocync" / "config") not in p.parents]


@pytest.mark.parametrize("path", _OUTSIDE_CONFIG, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_config_imports_pydantic_or_yaml(path: Path) -> None:
    assert not _imports(path) & {"pydantic", "pydantic_core", "yaml"}


_CONFIG_MAY_NOT_IMPORT = ("ocync.registry", "ocync.engine", "ocync.cli")


@pytest.mark.parametrize("path", _files("ocync/config"), ids=lambda p: p.name)
def test_config_imports_no_io_layer(path: Path) -> None:
    bad = {
        name
        for name in _imported_modules(path)
        if any(name == layer or name.startswith(layer + ".") for layer in _CONFIG_MAY_NOT_IMPORT)
    }
    assert not bad


def test_importing_config_loads_no_io_layer() -> None:
    """The same rule, transitively: what ocync.config imports imports no I/O layer either."""
    code = (
        "import sys, ocync.config; "
        f"print(sorted(m for m in sys.modules if m.startswith({_CONFIG_MAY_NOT_IMPORT!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mock_and_client_count_the_same_request_kinds() -> None:
    """The mock's /_mock/stats kinds and ocync's client counters share one vocabulary, so a run's
    counts compare kind by kind; each side keeps its own list (the mock never imports ocync)."""
    from mockregistry.stats import KINDS
    from ocync.registry.profiles import REQUEST_KINDS

    assert KINDS == REQUEST_KINDS


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
