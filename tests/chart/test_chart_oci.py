"""The packaged chart as an OCI artifact, the way GHCR hosts charts: ``helm push`` into the
mock and ``helm pull`` back with Helm's own OCI client (helm-python-sdk binds Helm v4's Go
library: a real client we did not write), then ``ocync copy`` of that artifact between two
mocks (the second a ghcr-profile one with token auth), digest unchanged."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path

import helm_python as helm
import trio

from mockregistry import MockOptions, serve_mock
from tests.chart.helmchart import CHART

TOKEN = "ghp_chartOciTest"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_helm_push_pull_and_ocync_copy_of_the_chart(tmp_path: Path) -> None:
    archive = Path(helm.package(CHART, destination=tmp_path / "pkg"))
    version = helm.Chart.load(archive).version
    assert archive.name == f"ocync-{version}.tgz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "ocync/values.schema.json" in names and not any("/ci/" in n for n in names)
    async with (
        serve_mock(MockOptions(profile="generic")) as first,
        serve_mock(MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                               user_namespaces={"alice": ["myorg"]})) as second,
    ):
        client = helm.RegistryClient(plain_http=True, credentials_file=tmp_path / "helm-registry.json")
        pushed = await trio.to_thread.run_sync(
            lambda: client.push(str(archive), f"oci://{first.host}/charts", plain_http=True)
        )
        digest = (await trio.to_thread.run_sync(
            lambda: client.resolve(f"oci://{first.host}/charts/ocync:{version}")
        ))["digest"]
        assert digest.startswith("sha256:"), pushed
        pulled_dir = tmp_path / "pulled"
        pulled_dir.mkdir()
        await trio.to_thread.run_sync(lambda: client.pull(
            f"oci://{first.host}/charts/ocync", version=version, destination=pulled_dir, plain_http=True
        ))
        pulled = pulled_dir / archive.name
        assert sha256(pulled) == sha256(archive)

        auth = tmp_path / "docker" / "config.json"
        auth.parent.mkdir()
        basic = base64.b64encode(f"alice:{TOKEN}".encode()).decode()
        auth.write_text(json.dumps({"auths": {second.host: {"auth": basic}}}))
        done = await trio.run_process(
            [sys.executable, "-m", "ocync", "copy", "--authfile", str(auth), "--dst-profile", "ghcr", "--json",
             f"{first.host}/charts/ocync:{version}", f"{second.host}/myorg/charts/ocync:{version}"],
            capture_stdout=True, capture_stderr=True, check=False,
            env={**os.environ, "PYTHONPATH": str(CHART.parents[1])},
        )
        assert done.returncode == 0, done.stderr.decode()
        assert TOKEN not in done.stdout.decode() + done.stderr.decode()

        login = helm.RegistryClient(plain_http=True, credentials_file=tmp_path / "helm-login.json")
        await trio.to_thread.run_sync(lambda: login.login(second.host, "alice", TOKEN, plain_http=True))
        copied = await trio.to_thread.run_sync(
            lambda: login.resolve(f"oci://{second.host}/myorg/charts/ocync:{version}")
        )
        assert copied["digest"] == digest
        again = tmp_path / "again"
        again.mkdir()
        await trio.to_thread.run_sync(lambda: login.pull(
            f"oci://{second.host}/myorg/charts/ocync", version=version, destination=again, plain_http=True
        ))
        assert sha256(again / archive.name) == sha256(archive)
        client.close()
        login.close()
