"""Shared fixtures: Debian's docker-registry and skopeo as real peers.

When OCYNC_REQUIRE_REAL=1 (set by .ci/run) a missing binary is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not listen on {port} within {timeout}s")


class DistributionRegistry:
    """A running Debian docker-registry (CNCF distribution 2.8) on loopback."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.binary = require_binary("docker-registry")
        self.port = port or free_port()  # a given port: the same registry restarted
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self.proc = subprocess.Popen(
            [self.binary, "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_listening(self.port, self.proc)
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionRegistry]:
    reg = DistributionRegistry(tmp_path / "distribution")
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def distribution_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionRegistry]:
    reg = DistributionRegistry(tmp_path_factory.mktemp("distribution"))
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def skopeo() -> str:
    return require_binary("skopeo")
