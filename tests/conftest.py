"""Shared fixtures: Debian's docker-registry and skopeo as real peers.

When OCYNC_REQUIRE_REAL=1 (set by .ci/run) a missing binary is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from stress.registries import DistributionProcess, free_port

__all__ = ["free_port", "require_binary", "distribution_process"]

REQUIRE_REAL = os.environ.get("OCYNC_REQUIRE_REAL") == "1"

# CI replays the same examples on every run (derandomize) so a red build always points at a
# change, never at a newly drawn example; local runs keep exploring (and print the seed / the
# @reproduce_failure blob when something breaks).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if REQUIRE_REAL or os.environ.get("CI") else "dev")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (apt-get install {name}); .ci/run installs it"
        if REQUIRE_REAL:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def distribution_process(
    root: Path, port: int | None = None, *, delete_enabled: bool = True
) -> DistributionProcess:
    """docker-registry 2.8 on loopback, started by `with` (stress/registries.py's harness, which
    tries another port when one is taken; ``port``: that port only, e.g. the same registry
    restarted), access log off, deletes on unless ``delete_enabled`` is False
    (REGISTRY_STORAGE_DELETE_ENABLED); a missing binary skips or fails."""
    require_binary("docker-registry")
    return DistributionProcess(root, access_log=False, port=port, delete_enabled=delete_enabled)


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionProcess]:
    with distribution_process(tmp_path / "distribution") as reg:
        yield reg


@pytest.fixture(scope="session")
def distribution_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionProcess]:
    with distribution_process(tmp_path_factory.mktemp("distribution")) as reg:
        yield reg


@pytest.fixture(scope="session")
def skopeo() -> str:
    return require_binary("skopeo")
