"""``ocync copy`` with ``oci:`` / ``oci-archive:`` / ``docker://`` references (skopeo's
syntax), and the one-line errors of bad layout paths and of a second writer."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.integration.layoutsupport import ENV, export_config, layout_problems, ocync, ref_names

pytestmark = pytest.mark.real_registry


async def _skopeo_raw(skopeo: str, ref: str) -> bytes:
    done = await trio.run_process([skopeo, "inspect", "--raw", ref], capture_stdout=True,
                                  capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


async def test_copy_to_and_from_layouts_and_archives(tmp_path: Path, skopeo: str) -> None:
    corpus = build_corpus(CorpusSpec(seed=34, repositories=1, tags_per_repo=1, referrers_per_image=0))
    [image] = corpus.images
    layout, archive = tmp_path / "dir", tmp_path / "one.tar"
    async with serve_mock(MockOptions(profile="generic")) as src, serve_mock(MockOptions()) as dst:
        await push_corpus(corpus, src.url)
        ref = f"{src.host}/{image.repo}:{image.tag}"
        # registry -> oci:DIR:TAG (skopeo style: ref name TAG), with docker:// on the source
        code, out = await ocync("copy", f"docker://{ref}", f"oci:{layout}:{image.tag}")
        assert code == 0, out
        assert ref_names(layout) == [image.tag]
        raw = await _skopeo_raw(skopeo, f"oci:{layout}:{image.tag}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest
        # registry -> oci:DIR (no ref: the source's repo:tag)
        code, out = await ocync("copy", ref, f"oci:{layout}")
        assert code == 0, out
        assert ref_names(layout) == sorted([image.tag, f"{image.repo}:{image.tag}"])
        assert layout_problems(layout) == []
        # oci:DIR:REPO:TAG -> registry, and by digest
        code, out = await ocync("copy", f"oci:{layout}:{image.repo}:{image.tag}",
                                f"docker://{dst.host}/back/app:{image.tag}", "--json")
        assert code == 0, out
        assert json.loads(out)["digest"] == image.digest
        code, out = await ocync("copy", f"oci:{layout}@{image.digest}", f"{dst.host}/back/bydigest@{image.digest}")
        assert code == 0, out
        # by digest only: an index.json entry without a ref name keeps it from being garbage
        bare = tmp_path / "bare"
        code, out = await ocync("copy", f"{src.host}/{image.repo}@{image.digest}", f"oci:{bare}@{image.digest}")
        assert code == 0, out
        [entry] = json.loads((bare / "index.json").read_bytes())["manifests"]
        assert entry["digest"] == image.digest and "annotations" not in entry
        assert layout_problems(bare) == []
        # registry -> oci-archive:FILE:TAG, read by skopeo; then archive -> registry
        code, out = await ocync("copy", ref, f"oci-archive:{archive}:{image.tag}")
        assert code == 0, out
        raw = await _skopeo_raw(skopeo, f"oci-archive:{archive}:{image.tag}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest
        code, out = await ocync("copy", f"oci-archive:{archive}:{image.tag}", f"{dst.host}/back/tar:{image.tag}")
        assert code == 0, out
        for repo in ("back/app", "back/tar"):
            assert dst.store.repos[repo].tags[image.tag] == image.digest


@pytest.mark.parametrize(
    ("make", "where", "expect"),
    [
        pytest.param(lambda p: None, "source", "no such directory", id="missing-source-dir"),
        pytest.param(lambda p: p.write_text("x"), "source", "not a directory", id="source-is-a-file"),
        pytest.param(lambda p: p.mkdir(), "source", "not an OCI image layout", id="source-not-a-layout"),
        pytest.param(lambda p: p.write_text("x"), "target", "not a directory", id="target-is-a-file"),
        pytest.param(lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "target",
                     "not an OCI image layout (no oci-layout file) and not empty", id="target-not-a-layout"),
        pytest.param(lambda p: p.write_text("not a tar"), "archive", "not a tar archive", id="archive-not-a-tar"),
    ],
)
async def test_bad_layout_paths_are_one_line_exit_3(
    tmp_path: Path, make: Callable[[Path], object], where: str, expect: str
) -> None:
    path = tmp_path / "thing"
    make(path)
    registry = "127.0.0.1:9/nowhere/app:1"  # never contacted: the layout is checked first
    if where == "source":
        args = (f"oci:{path}:1", registry)
    elif where == "target":
        args = (registry, f"oci:{path}:1")
    else:
        args = (f"oci-archive:{path}:1", registry)
    code, out = await ocync("copy", *args)
    assert code == 3, out
    assert "Traceback" not in out
    [line] = out.strip().splitlines()
    assert expect in line and str(path) in line, line


async def test_second_writer_is_refused_with_exit_2(tmp_path: Path) -> None:
    """A run holding the layout's lock (the flock every writer takes) makes a second writer
    fail at once with one line naming the lock; the layout is untouched."""
    corpus = build_corpus(CorpusSpec(seed=35, repositories=1, tags_per_repo=1))
    repos = sorted(corpus.repos)
    layout = tmp_path / "mirror"
    async with serve_mock(MockOptions(profile="generic")) as src:
        await push_corpus(corpus, src.url)
        cfg = export_config(tmp_path / "export.yaml", src.host, layout, tmp_path / "cache", repos)
        code, out = await ocync("sync", "-c", str(cfg))
        assert code == 0, out
        before = (layout / "index.json").read_bytes()
        fd = os.open(layout / ".ocync-lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the first writer holds it
            code, out = await ocync("sync", "-c", str(cfg), "--no-cache")
        finally:
            os.close(fd)
        assert code == 2, out
        assert "Traceback" not in out
        [line] = out.strip().splitlines()
        assert "another ocync is writing to it" in line and ".ocync-lock" in line, line
        assert (layout / "index.json").read_bytes() == before
        # the lock released, the same run goes through (and writes nothing new)
        code, out = await ocync("sync", "-c", str(cfg), "--no-cache")
        assert code == 0, out


async def test_a_running_sync_refuses_a_second_one(tmp_path: Path) -> None:
    """Two real ``ocync sync`` into one layout: the first, stopped (SIGSTOP) once it holds the
    lock and has written a blob, keeps it; the second exits 2 at once; the first, continued,
    completes a sound layout."""
    corpus = build_corpus(CorpusSpec(seed=37, repositories=2, tags_per_repo=2,
                                     layer_size=(64 * 1024, 128 * 1024)))
    repos = sorted(corpus.repos)
    layout = tmp_path / "mirror"
    async with serve_mock(MockOptions(profile="generic", latency_ms=20)) as src:
        await push_corpus(corpus, src.url)
        cfg = export_config(tmp_path / "export.yaml", src.host, layout, tmp_path / "cache", repos)
        first = await trio.lowlevel.open_process(
            [sys.executable, "-m", "ocync", "sync", "-c", str(cfg), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
        )
        try:
            with trio.fail_after(60):
                # polling another process's files: no event to wait on
                while not list((layout / "blobs").glob("*/*")):  # noqa: ASYNC110
                    assert first.poll() is None, "the first sync ended before writing a blob"
                    await trio.sleep(0.005)
            first.send_signal(signal.SIGSTOP)
            code, out = await ocync("sync", "-c", str(cfg), "--no-cache")
            first.send_signal(signal.SIGCONT)
            assert code == 2, out
            [line] = out.strip().splitlines()
            assert "another ocync is writing to it" in line, line
            with trio.fail_after(120):
                assert await first.wait() == 0
        finally:
            if first.poll() is None:
                first.kill()
                await first.wait()
    assert layout_problems(layout) == []
    assert len(ref_names(layout)) == len(corpus.images)
