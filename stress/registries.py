"""Registries for the sync benchmark, as subprocesses whose every request is logged.

- `DistributionProcess`: Debian's `docker-registry` 2.8 (the reference implementation) with
  filesystem storage in a temporary directory and deletes enabled; also the tests' fixture
  (tests/conftest.py, with the access log off). Its access log (gorilla's
  combined log format on stdout, one line per request AFTER the response is written:
  `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"`) gives method, path with query,
  status and response bytes; request bodies are not logged.
- `MockRegistryProcess`: `ocync-mockregistry serve --access-log FILE` (one JSON line per request:
  method, path, query, kind, status, bytes_in, bytes_out) plus /_mock/stats.

Both expose `take() -> list[LoggedRequest]`: the requests since the previous call, after the log
has settled (the last line of a request may land just after the client saw the response).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from stress.mockproc import MockProcess, ServerProcess

__all__ = [
    "DistributionProcess",
    "LoggedRequest",
    "MockRegistryProcess",
    "classify",
    "free_port",
]


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the registry logged it (`query` without the "?", "" if none)."""

    method: str
    path: str
    query: str
    kind: str
    status: int
    bytes_out: int
    bytes_in: int | None  # None: the registry does not log request bodies

    @property
    def digest(self) -> str | None:
        """The digest in a blob path (`/v2/<name>/blobs/<digest>`), if any."""
        head, sep, tail = self.path.rpartition("/blobs/")
        if not sep or tail.startswith("uploads"):
            return None
        return tail or None

    @property
    def repository(self) -> str:
        match = _REPO.match(self.path)
        return match.group(1) if match else ""


_REPO = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


def classify(method: str, path: str, query: str = "") -> str:
    """The request kind of a distribution API request, in the vocabulary ocync's client counters
    and the mock's /_mock/stats share (ocync/registry/profiles.py, mockregistry/stats.py)."""
    if path in ("/v2/", "/v2"):
        return "ping"
    if path.endswith("/_catalog"):
        return "catalog"
    if "/blobs/uploads" in path:
        if method == "POST":
            return "mount" if "mount=" in query else "upload_post"
        return {"PATCH": "upload_patch", "PUT": "upload_put", "GET": "upload_get"}.get(
            method, "upload_delete"
        )
    if "/blobs/" in path:
        return {"HEAD": "blob_head", "GET": "blob_get"}.get(method, "other")
    if "/manifests/" in path:
        return {
            "HEAD": "manifest_head",
            "GET": "manifest_get",
            "PUT": "manifest_put",
            "DELETE": "manifest_delete",
        }.get(method, "other")
    if path.endswith("/tags/list"):
        return "tags_list"
    if "/referrers/" in path:
        return "referrers"
    if path.startswith("/token") or path.endswith("/token"):
        return "token"
    return "other"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    """True once `port` accepts connections while `proc` runs; False if it exits first (e.g.
    the port was taken between `free_port()` and its bind) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc.poll() is None
        except OSError:
            time.sleep(0.05)
    return False


class _LogTail:
    """Reads the lines appended to a file since the last call, once the file stops growing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def take(self, settle: float = 0.05, timeout: float = 2.0) -> list[str]:
        deadline = time.monotonic() + timeout
        size = self.path.stat().st_size
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = self.path.stat().st_size
            if now == size:
                break
            size = now
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        # Keep a partial last line for the next call.
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        return data[:cut].decode(errors="replace").splitlines()


_COMBINED = re.compile(
    r'"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)'
)


class DistributionProcess(ServerProcess):
    """`with DistributionProcess(workdir) as reg: reg.url, reg.take()` -- docker-registry 2.8.

    A port taken between `free_port()` and the registry's bind makes it exit: `start()` tries
    again on another port (three times). `access_log=False` leaves `take()` empty.
    """

    def __init__(
        self,
        root: Path,
        *,
        startup_timeout: float = 15.0,
        access_log: bool = True,
        port: int | None = None,
        delete_enabled: bool = True,
    ) -> None:
        self.root = root
        self.delete_enabled = delete_enabled  # False: manifest DELETEs answer 405 UNSUPPORTED
        self.startup_timeout = startup_timeout
        self.log_requests = access_log
        self.fixed_port = port  # None: a free port, another one if it is taken meanwhile
        self.port = 0
        self.access_log = root / "access.log"
        self._tail = _LogTail(self.access_log)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Self:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        for _attempt in range(3 if self.fixed_port is None else 1):
            self.port = self.fixed_port or free_port()
            config.write_text(self._config())
            with self.access_log.open("ab") as out, (self.root / "registry.log").open("ab") as err:
                self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=err)
            if _wait_for_port(self.port, self.startup_timeout, self.proc):
                self._tail.offset = self.access_log.stat().st_size
                return self
            self.stop()  # the port was taken in between, or the binary failed: try another
        detail = (self.root / "registry.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"docker-registry did not start: {detail.strip()}")

    def _config(self) -> str:
        """Filesystem storage under root, deletes on (unless ``delete_enabled`` is False), no
        background upload purging (it only removes week-old sessions), the access log (on
        stdout) as asked."""
        access_off = "false" if self.log_requests else "true"
        return (
            "version: 0.1\n"
            f"log:\n  level: warn\n  formatter: text\n  accesslog:\n    disabled: {access_off}\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"  delete:\n    enabled: {'true' if self.delete_enabled else 'false'}\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )

    def take(self) -> list[LoggedRequest]:
        out: list[LoggedRequest] = []
        for line in self._tail.take():
            match = _COMBINED.search(line)
            if match is None:
                continue
            method, target, status, size = match.groups()
            path, _, query = target.partition("?")
            out.append(
                LoggedRequest(
                    method=method,
                    path=path,
                    query=query,
                    kind=classify(method, path, query),
                    status=int(status),
                    bytes_out=0 if size == "-" else int(size),
                    bytes_in=None,
                )
            )
        return out


class MockRegistryProcess(MockProcess):
    """`ocync-mockregistry serve ... --access-log FILE` as a subprocess (see stress/mockproc.py)."""

    def __init__(
        self, root: Path, args: Sequence[str] = (), *, startup_timeout: float = 20.0
    ) -> None:
        self.root = root
        self.access_log = root / "access.jsonl"
        self._tail = _LogTail(self.access_log)
        super().__init__(
            [*args, "--access-log", str(self.access_log)], startup_timeout=startup_timeout
        )

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        self.access_log.touch()
        return super().start()

    def take(self) -> list[LoggedRequest]:
        out: list[LoggedRequest] = []
        for line in self._tail.take():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            out.append(
                LoggedRequest(
                    method=str(entry.get("method", "")),
                    path=str(entry.get("path", "")),
                    query=str(entry.get("query", "")),
                    kind=str(entry.get("kind", "other")),
                    status=int(entry.get("status", 0)),
                    bytes_out=int(entry.get("bytes_out", 0)),
                    bytes_in=int(entry.get("bytes_in", 0)),
                )
            )
        return out
