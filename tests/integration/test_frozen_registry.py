"""A registry that stops answering mid-run (its process stopped with SIGSTOP: the kernel still
accepts connections, nothing ever answers) fails the requests that need it within the
timeout, is given up after a couple of timeouts in a row, and the run ends naming it.

The end-to-end case runs the mock and ``ocync sync`` as real subprocesses; the request-count
case runs against a scripted transport under trio's MockClock; the write case against a
loopback server that never reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from ocync.engine.registryendpoint import ClientEndpoint
from ocync.errors import NotAnswering, OcyncError, TransportError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor
from ocync.registry.client import TIMEOUT_ATTEMPTS, ClientSettings, RegistryClient
from ocync.registry.wire import WirePool
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from stress.mockproc import MockProcess

# Generous bounds for a loaded 2-core machine; the frozen run itself needs about 2 timeouts.
STARTED_WITHIN = 60.0
ENDED_WITHIN = 60.0


def _wait_for_blob_gets(mock: MockProcess, proc: subprocess.Popen[str]) -> None:
    """Until the sync is under way: the source has served a blob (polled via its stats)."""
    until = time.monotonic() + STARTED_WITHIN
    while time.monotonic() < until and proc.poll() is None:
        by_kind = mock.stats()["by_kind"]
        assert isinstance(by_kind, dict)
        if by_kind["blob_get"] >= 1:
            return
        time.sleep(0.02)
    raise AssertionError(f"the sync served no blob within {STARTED_WITHIN} s (exit {proc.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["flag", "config"])
def test_sync_gives_up_on_a_source_frozen_mid_run(tmp_path: Path, where: str) -> None:
    corpus = build_corpus(CorpusSpec(seed=5, repositories=2, tags_per_repo=6, layer_size=(64 * 1024, 256 * 1024)))
    # 100 ms per request keeps the sync running for seconds: it is frozen mid-run, not after.
    with MockProcess(["--latency", "100"]) as src, MockProcess() as dst:
        trio.run(push_corpus, corpus, src.url)
        src_host = src.url.split("://", 1)[1]
        dst_host = dst.url.split("://", 1)[1]
        timeout = "    timeout: 2s\n" if where == "config" else ""
        cfg = tmp_path / "ocync.yaml"
        cfg.write_text(
            f"global:\n  cache_dir: {tmp_path / 'cache'}\n  max_concurrent_transfers: 2\n"
            f"registries:\n  src:\n    url: {src_host}\n{timeout}  dst:\n    url: {dst_host}\n"
            "defaults:\n  source: src\n  targets: dst\n"
            "mappings:\n  - from: corpus/repo0\n    to: mirror/repo0\n"
            "  - from: corpus/repo1\n    to: mirror/repo1\n"
        )
        flag = ["--timeout", "2"] if where == "flag" else []
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg), "--no-cache", *flag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        )
        frozen = False
        try:
            _wait_for_blob_gets(src, proc)
            os.kill(src.pid, signal.SIGSTOP)
            frozen = True
            assert proc.poll() is None, "the sync ended before the source froze: nothing was tested"
            try:
                out, err = proc.communicate(timeout=ENDED_WITHIN)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"ocync sync still running {ENDED_WITHIN} s after the source froze:\n{err[-2000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            if frozen:
                os.kill(src.pid, signal.SIGCONT)
    assert proc.returncode in (1, 2), (proc.returncode, err[-2000:])
    assert "Traceback" not in err
    assert f"{src_host}: stopped answering" in err, err[-2000:]
    assert out.strip().splitlines()[-1].startswith("images: "), out


def _frozen_client(sent: list[str], read_timeout: float, attempts: int = 5) -> RegistryClient:
    async def frozen(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        await trio.sleep(read_timeout)  # nothing arrives for the whole read timeout
        raise httpx.ReadTimeout("timed out", request=request)

    settings = ClientSettings(attempts=attempts, read_timeout=read_timeout)
    return RegistryClient("reg.test", settings, transport=httpx.MockTransport(frozen), seed=1)


async def test_frozen_host_costs_two_timeouts_not_one_per_request(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """20 blob downloads (each with 5 attempts of its own) from a host that answers nothing:
    once two requests in a row timed out, the rest fail at once without being sent."""
    sent: list[str] = []
    errors: list[OcyncError] = []
    blobs = [Descriptor(mt.OCI_LAYER_GZIP, Digest.of(b"%d" % i), 1) for i in range(20)]
    start = trio.current_time()
    async with _frozen_client(sent, read_timeout=7.0) as client:
        endpoint = ClientEndpoint("src", client, seed=1)

        async def download(index: int, desc: Descriptor) -> None:
            try:
                await endpoint.download_blob("o/a", desc, tmp_path / f"blob-{index}")
            except OcyncError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for index, desc in enumerate(blobs):
                nursery.start_soon(download, index, desc)
        with pytest.raises(NotAnswering, match=r"^reg\.test: stopped answering \(nothing received for 7 s, "
                                               r"2 times in a row\); given up for this run \(GET /v2/o/a/tags/list\)$"):
            await client.list_tags("o/a")
    assert len(errors) == len(blobs) and all(isinstance(e, TransportError) for e in errors)
    assert not any(e.temporary for e in errors)  # nobody restarts against a frozen host
    assert client.silence.given_up and client.silence.in_a_row == TIMEOUT_ATTEMPTS
    # Only what was in flight when the host froze was ever sent (the controller's window),
    # and the run spent the time of one timeout plus one retry's, not 20 x 5 x 2 of them.
    assert len(sent) < len(blobs), sent
    assert trio.current_time() - start < 3 * 7.0


async def test_an_answer_between_timeouts_keeps_the_host(autojump_clock: trio.testing.MockClock) -> None:
    """A timeout, an answer, a timeout: not two in a row, the host is still used."""
    calls: list[str] = []

    async def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) in (1, 3):
            await trio.sleep(5.0)
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"tags": ["v1"]})

    settings = ClientSettings(attempts=5, read_timeout=5.0)
    async with RegistryClient("reg.test", settings, transport=httpx.MockTransport(flaky), seed=1) as client:
        assert await client.list_tags("o/a") == ["v1"]  # timeout, then an answer
        assert await client.list_tags("o/a") == ["v1"]  # timeout, then an answer
        assert await client.list_tags("o/a") == ["v1"]
    assert len(calls) == 5 and not client.silence.given_up


@pytest.fixture
async def never_reads() -> AsyncIterator[str]:
    """A loopback server that accepts and then never reads (its receive buffer fills up)."""
    held: list[trio.SocketStream] = []

    async def handler(stream: trio.SocketStream) -> None:
        held.append(stream)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


async def test_a_write_the_peer_never_takes_fails_within_the_timeout(never_reads: str) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(256):  # 64 MiB: far more than the socket buffers on both sides hold
            yield b"\0" * (256 * 1024)

    pool = WirePool(connect_timeout=2, read_timeout=0.5)
    with trio.fail_after(60):  # the bound of the test, not the behaviour under test
        async with contextlib.aclosing(body()) as chunks:
            with pytest.raises(TransportError, match=r": no answer within 0\.5 s \(PUT /upload\)$"):
                await pool.request("PUT", f"{never_reads}/upload", {}, chunks)
    await pool.aclose()
