"""The mock registry as a subprocess (`ocync-mockregistry serve --port 0 ...`), for tests and benchmarks.

The CLI contract (mockregistry/cli.py's docstring): the first stdout line is the base URL, logs go to
stderr, SIGTERM exits 0. Running it out of process keeps the load generator's CPU apart from
the server's and lets the benchmark read the server's peak RSS from /proc. `ServerProcess` (stop
with SIGTERM, RSS, `with`) also serves stress/registries.py's docker-registry and logged mock.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx


def mock_command() -> list[str]:
    """The console script next to this interpreter (a venv), else `python -m mockregistry.cli`."""
    script = Path(sys.executable).parent / "ocync-mockregistry"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mockregistry.cli"]


class ServerProcess:
    """A server subprocess (`proc`, set by `start()`): `with` starts it, `stop()` sends SIGTERM and
    kills it if it has not exited within 10 s. Shared by the mock and docker-registry harnesses."""

    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None

    def start(self) -> Self:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _status_bytes(self, field: str) -> int:
        """A `kB` field of the server's /proc status (Linux), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc status (not Linux?)")

    def peak_rss_bytes(self) -> int:
        """VmHWM of the server process (Linux /proc): its peak resident set size."""
        return self._status_bytes("VmHWM")

    def rss_bytes(self) -> int:
        return self._status_bytes("VmRSS")

    def _release(self) -> None:
        """What a harness closes once its process has exited (pipes, files)."""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._release()
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MockProcess(ServerProcess):
    """`with MockProcess(["--profile", "ghcr"]) as mock: mock.url` -- stopped with SIGTERM on exit."""

    def __init__(self, args: Sequence[str] = (), *, startup_timeout: float = 20.0) -> None:
        self.args = ["serve", "--host", "127.0.0.1", "--port", "0", *args]
        self.startup_timeout = startup_timeout
        self.url = ""
        self._stderr = tempfile.TemporaryFile()

    def start(self) -> Self:
        self.proc = subprocess.Popen(
            [*mock_command(), *self.args], stdout=subprocess.PIPE, stderr=self._stderr
        )
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                self.stop()
                raise RuntimeError(f"mock registry printed no URL within {self.startup_timeout}s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                detail = self.stderr()
                self.stop()
                raise RuntimeError(f"mock registry exited before printing its URL: {detail}")
            line += chunk
        selector.close()
        self.url = line.split(b"\n", 1)[0].decode().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError(f"mock registry's first stdout line is not a URL: {self.url!r}")
        return self

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def stats(self) -> dict[str, object]:
        response = httpx.get(f"{self.url}/_mock/stats", timeout=10)
        response.raise_for_status()
        data: dict[str, object] = response.json()
        return data

    def _release(self) -> None:
        assert self.proc is not None
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
