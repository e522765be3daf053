"""The Dockerfile's build and install steps, run as written outside the source tree: the wheel
is built from only what the Dockerfile copies, installed into a fresh venv with the image's
constraints, and its ``ocync`` and ``ocync-mockregistry`` work (version, schema, validate,
serve); then the installed ``ocync sync`` runs with HOME and the working directory watched and
writes only to the cache volume and /tmp. No container builder or base image is needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.chart.podrun import snapshot

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def copied_sources() -> list[str]:
    """What the build stage COPYs from the context (``COPY a b ./`` and ``COPY dir ./dir``)."""
    names: list[str] = []
    for line in dockerfile().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            names += line.split()[1:-1]
    return names


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh venv holding the wheel, installed the Dockerfile's way."""
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    for name in copied_sources():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    dist, venv = work / "dist", work / "venv"
    run = {"cwd": context, "check": True, "capture_output": True, "text": True, "timeout": 300}
    # the RUN line of the build stage, with /dist and /opt/ocync under this test's directory
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), "."], **run)  # type: ignore[call-overload]
    wheels = sorted(dist.glob("ocync-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run([sys.executable, "-m", "venv", str(venv)], **run)  # type: ignore[call-overload]
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--constraint",
                    "constraints.txt", str(wheels[0])], **run)  # type: ignore[call-overload]
    yield venv / "bin"


def test_dockerfile_runs_as_non_root_with_ocync_as_entrypoint() -> None:
    text = dockerfile()
    assert 'ENTRYPOINT ["ocync"]' in text
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and all(not u.startswith(("root", "0")) for u in user)
    assert user[-1] == "65532:65532"  # the chart's runAsUser/runAsGroup
    assert "org.opencontainers.image.version" in text and "org.opencontainers.image.source" in text
    assert text.count("FROM ") == 2  # build stage, then the runtime image


def run(bin_dir: Path, *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = env or {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True,
                          cwd=cwd or bin_dir, env=environment, timeout=120, check=False)


@pytest.mark.slow
def test_installed_wheel_commands_work_outside_the_tree(installed: Path, tmp_path: Path) -> None:
    version = run(installed, "ocync", "version")
    assert version.returncode == 0 and version.stdout.startswith("ocync "), version.stderr
    schema = run(installed, "ocync", "schema")
    assert schema.returncode == 0 and "mappings" in json.loads(schema.stdout)["properties"]
    example = tmp_path / "ghcr.yaml"
    shutil.copy2(ROOT / "examples" / "ghcr.yaml", example)
    env = {"PATH": f"{installed}:/usr/bin:/bin", "GITHUB_TOKEN": "ghp_x"}
    valid = run(installed, "ocync", "validate", str(example), env=env)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    # the module imports come from the venv, not from this checkout
    where = run(installed, "python", "-c", "import ocync, mockregistry; print(ocync.__file__, mockregistry.__file__)")
    assert str(ROOT) not in where.stdout and "site-packages" in where.stdout, where.stdout


@pytest.mark.slow
async def test_installed_mock_serves_and_installed_sync_writes_only_its_volumes(installed: Path, tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=21, repositories=1, tags_per_repo=2, platforms=("linux/amd64",)))
    home, workdir, cache, scratch = (tmp_path / d for d in ("home", "workdir", "cache", "tmp"))
    for d in (home, workdir, cache, scratch):
        d.mkdir()
    mock = await trio.lowlevel.open_process(
        [str(installed / "ocync-mockregistry"), "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert mock.stdout is not None
        with trio.fail_after(30):
            first = b""
            while b"\n" not in first:
                chunk = await mock.stdout.receive_some(4096)
                assert chunk, "the mock exited before printing its URL"
                first += chunk
        target = first.decode().splitlines()[0].strip()
        assert target.startswith("http://127.0.0.1:")
        async with serve_mock(MockOptions(profile="generic")) as src:
            await push_corpus(corpus, src.url)
            config = workdir / "ocync.yaml"
            repo = next(iter(corpus.repos))
            config.write_text(
                f"global: {{cache_dir: {cache}}}\nregistries:\n  src: {{url: {src.host}}}\n"
                f"  dst: {{url: {target.removeprefix('http://')}}}\n"
                f"defaults: {{source: src, targets: dst}}\nmappings:\n  - {{from: {repo}, to: mirror/app}}\n"
            )
            before = {"home": snapshot(home), "workdir": snapshot(workdir)}
            env = {"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(scratch)}
            done = await trio.run_process(
                [str(installed / "ocync"), "sync", "-c", str(config)], cwd=workdir, env=env,
                capture_stdout=True, capture_stderr=True, check=False,
            )
            assert done.returncode == 0, done.stderr.decode()
            assert {"home": snapshot(home), "workdir": snapshot(workdir)} == before
            assert (cache / "transfer-cache.json").is_file()
            problems = await verify_corpus(corpus, target, repo_map={repo: "mirror/app"}, check_blob_bytes=True)
            assert problems == []
    finally:
        mock.terminate()
        await mock.wait()
