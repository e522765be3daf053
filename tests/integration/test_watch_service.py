"""``ocync watch`` as a service, as a real process against real mocks: readiness, metrics that
agree with the mocks' own counters, an invalid config edit survived, a dead source survived with
a growing backoff, and a SIGTERM drain that exits 0 with no tag pointing at missing blobs.

The mocks run in this test's trio loop; the source is served on a fixed port so it can be
stopped and started again. Another process's progress is only visible by polling its endpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from mockregistry import MockOptions, MockRegistry, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.conftest import free_port
from tests.property.test_sync_property import dangling

TOKEN = "pat-watch-s3cr3t-value"
pytestmark = pytest.mark.slow
WAIT = 60.0  # seconds any one expected state may take to show (2 shared cores, 8 helpers)


def write_config(path: Path, src: str, dst: str, cache: Path, repos: list[str]) -> None:
    maps = "".join(f"  - {{from: {r}, to: mirror/{r}}}\n" for r in repos)
    path.write_text(
        f"global: {{cache_dir: '{cache}', max_concurrent_transfers: 2}}\n"
        f"registries:\n  src: {{url: '{src}'}}\n"
        f"  dst: {{url: '{dst}', credentials: {{username: alice, password: {TOKEN}}}}}\n"
        f"defaults: {{source: src, targets: dst}}\nmappings:\n{maps}"
    )


class SourceMock:
    """The source registry on a fixed port and storage directory, stoppable and restartable."""

    def __init__(self, nursery: trio.Nursery, storage: Path) -> None:
        self.nursery = nursery
        self.storage = storage
        self.port = free_port()
        self.mock: MockRegistry | None = None
        self._scope: trio.CancelScope | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, latency_ms: float = 0.0) -> MockRegistry:
        started = trio.Event()
        stopped = trio.Event()

        async def run() -> None:
            with trio.CancelScope() as scope:
                self._scope = scope
                opts = MockOptions(storage_dir=self.storage, port=self.port, latency_ms=latency_ms)
                async with serve_mock(opts) as mock:
                    self.mock = mock
                    started.set()
                    await trio.sleep_forever()
            stopped.set()

        self._stopped = stopped
        self.nursery.start_soon(run)
        await started.wait()
        assert self.mock is not None
        return self.mock

    async def stop(self) -> None:
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()
        self.mock = None


class Watch:
    """The ``ocync watch`` process: its output collected, its endpoints asked."""

    def __init__(self, proc: trio.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.out = bytearray()
        self.err = bytearray()
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)

    async def get(self, path: str) -> httpx.Response | None:
        try:
            return await self.http.get(path)
        except httpx.TransportError:
            return None  # not listening yet

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        resp = await self.get("/metrics")
        assert resp is not None and resp.status_code == 200
        samples = {}
        for family in text_string_to_metric_families(resp.text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    async def wait_for(self, what: str, check: Any) -> Any:
        with trio.move_on_after(WAIT):
            while True:
                assert self.proc.poll() is None, f"watch ended while waiting for {what}: {self.err.decode()}"
                value = await check()
                if value:
                    return value
                await trio.sleep(0.1)  # another process's state: polled
        raise AssertionError(f"timed out waiting for {what}; stderr:\n{self.err.decode()[-3000:]}")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        return [doc for doc in map(json.loads, self.err.decode().splitlines()) if doc["event"] == event]


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@asynccontextmanager
async def watch_process(argv: list[str], port: int) -> AsyncIterator[Watch]:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ocync", "watch", *argv, "--health-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    watch = Watch(proc, port)

    async def pump(stream: Any, into: bytearray) -> None:
        while chunk := await stream.receive_some(1 << 16):
            into += chunk

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, proc.stdout, watch.out)
            nursery.start_soon(pump, proc.stderr, watch.err)
            try:
                yield watch
            finally:
                if proc.poll() is None:
                    proc.kill()
                await proc.wait()
    finally:
        await watch.http.aclose()
    text = watch.err.decode()
    assert "Traceback" not in text and TOKEN not in text and TOKEN not in watch.out.decode(), text


def dst_tags(dst: MockRegistry) -> int:
    return sum(len(dst.store.repos[n].tags) for n in dst.store.repository_names())


async def test_watch_service_survives_faults_and_reports_them(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=21, repositories=2, tags_per_repo=2))
    more = build_corpus(CorpusSpec(seed=22, repositories=1, namespace="more", tags_per_repo=2))
    repos = sorted(corpus.repos)
    dst_opts = MockOptions(auth="token", users={"alice": TOKEN}, user_namespaces={"alice": ["mirror"]})
    async with trio.open_nursery() as nursery, serve_mock(dst_opts) as dst:
        source = SourceMock(nursery, tmp_path / "src-store")
        src = await source.start(latency_ms=100)  # cycle 1 takes long enough to see 503 first
        await push_corpus(corpus, src.url)
        await push_corpus(more, src.url)
        src.reset_stats()  # from here on the mocks count what ocync sends
        cfg = tmp_path / "ocync.yaml"
        write_config(cfg, source.host, dst.host, tmp_path / "cache", repos[:1])
        port = free_port()
        argv = ["-c", str(cfg), "--interval", "1", "--failure-backoff", "2", "--drain-timeout", "15",
                "--log-format", "json"]
        async with watch_process(argv, port) as w:
            # readiness: 503 before the first cycle ends, then 200
            first = await w.wait_for("/readyz", lambda: w.get("/readyz"))
            assert first.status_code == 503 and first.json()["status"] == "first_cycle_pending"
            await w.wait_for("ready", _status(w, "/readyz", 200))
            assert dst_tags(dst) == 2

            # metrics agree with the mocks' counters (read between two cycles: equal scrapes)
            samples = await w.wait_for("a quiet moment", _stable_metrics(w, src, dst))
            for name, mock in (("src", src), ("dst", dst)):
                by_kind = mock.stats()["by_kind"]
                for kind, count in by_kind.items():
                    seen = total(samples, "ocync_requests_total", registry=name, kind=kind)
                    assert seen == count, (name, kind, seen, count)
            assert total(samples, "ocync_images_total", target="dst", outcome="synced") == dst_tags(dst) == 2
            assert total(samples, "ocync_images_total", target="dst", outcome="failed") == 0
            # one duration per blob copied from the source (uploads at the target: POST or PUT)
            copied = total(samples, "ocync_blobs_total", target="dst", action="transferred")
            assert copied > 0
            assert total(samples, "ocync_blob_transfer_duration_seconds_count") == copied

            # an invalid edit: still alive, not ready, with the file:line reason; old config runs
            cfg_text = cfg.read_text()
            cfg.write_text(cfg_text + "mappings: [\n")
            bad = await w.wait_for("config_invalid", _status(w, "/readyz", 503, "config_invalid"))
            assert bad["error"].startswith(f"{cfg}:"), bad
            healthz = await w.get("/healthz")
            assert healthz is not None and healthz.status_code == 200
            cycles = total(await w.metrics(), "ocync_cycles_total")
            await w.wait_for("cycles go on", _more_cycles(w, cycles + 2))

            # valid again with a new mapping: ready, and the new mapping is synced
            write_config(cfg, source.host, dst.host, tmp_path / "cache", [*repos, *sorted(more.repos)])
            await w.wait_for("ready again", _status(w, "/readyz", 200))
            await w.wait_for("new mappings synced", _async(lambda: dst_tags(dst) == 6))
            assert not dangling(dst.store)

            # the source goes away: failed cycles counted, backoff grows, the process stays up
            await source.stop()
            await w.wait_for("3 failed cycles", _cycles(w, "failed", 3))
            await w.wait_for("not ready", _status(w, "/readyz", 503, "failing"))
            failures = w.log_events("cycle_failed")[-3:]
            waits = [f["next_in"] for f in failures]
            assert waits[0] < waits[1] < waits[2], waits
            healthz = await w.get("/healthz")
            assert healthz is not None and healthz.status_code == 200
            # and back: the next cycle succeeds
            ok_before = total(await w.metrics(), "ocync_cycles_total", outcome="ok")
            src = await source.start(latency_ms=300)
            await w.wait_for("recovered", _cycles(w, "ok", ok_before + 1))
            await w.wait_for("ready after recovery", _status(w, "/readyz", 200))

            # SIGTERM while a transfer is in flight: drained, exit 0, no dangling tag
            late = build_corpus(CorpusSpec(seed=23, repositories=2, namespace="late", tags_per_repo=2))
            await push_corpus(late, src.url)
            write_config(cfg, source.host, dst.host, tmp_path / "cache",
                         [*repos, *sorted(more.repos), *sorted(late.repos)])
            uploads = dst.stats()["by_kind"]["upload_post"] + dst.stats()["by_kind"]["mount"]
            await w.wait_for("a transfer in flight", _async(
                lambda: dst.stats()["by_kind"]["upload_post"] + dst.stats()["by_kind"]["mount"] > uploads))
            w.proc.send_signal(signal.SIGTERM)
            start = trio.current_time()
            # readiness turns 503 once the signal is handled (the drain), until the process ends
            draining = await w.get("/readyz")
            while draining is not None and draining.status_code == 200 and w.proc.returncode is None:
                await trio.sleep(0.02)
                draining = await w.get("/readyz")
            with trio.fail_after(15 + 10):
                code = await w.proc.wait()
            assert code == 0, w.err.decode()[-3000:]
            assert trio.current_time() - start < 15 + 10
            assert draining is None or draining.status_code == 503
            assert not dangling(dst.store)
        nursery.cancel_scope.cancel()


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()
    return run


def _status(w: Watch, path: str, code: int, status: str | None = None) -> Any:
    async def check() -> Any:
        resp = await w.get(path)
        if resp is None or resp.status_code != code:
            return None
        doc = resp.json()
        return doc if status is None or doc.get("status") == status else None
    return check


def _cycles(w: Watch, outcome: str, at_least: float) -> Any:
    async def check() -> bool:
        return total(await w.metrics(), "ocync_cycles_total", outcome=outcome) >= at_least
    return check


def _more_cycles(w: Watch, at_least: float) -> Any:
    async def check() -> bool:
        return total(await w.metrics(), "ocync_cycles_total") >= at_least
    return check


def _stable_metrics(w: Watch, src: MockRegistry, dst: MockRegistry) -> Any:
    async def check() -> Any:
        before = await w.metrics()
        stats = (src.stats()["requests_total"], dst.stats()["requests_total"])
        await trio.sleep(0.2)
        after = await w.metrics()
        unchanged = (src.stats()["requests_total"], dst.stats()["requests_total"]) == stats
        return after if before == after and unchanged else None
    return check
