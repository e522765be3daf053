"""Smoke test of the sync benchmark harness (stress/syncbench/, stress/registries.py).

A tiny corpus on a pair of Debian docker-registry 2.8 instances, cold run only: both tools
must copy every tag faithfully, and ocync must spend fewer requests than `skopeo sync --all`
(counted from the registries' own access logs). Counts only, never times.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from stress.corpus import CorpusSpec, build_corpus
from stress.registries import DistributionProcess, LoggedRequest, classify
from stress.syncbench import SideBySide, ToolRun, ratios, tally

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def require_docker_registry() -> None:
    if shutil.which("docker-registry") is None:
        msg = "docker-registry is not installed (apt-get install docker-registry); .ci/run installs it"
        if os.environ.get("OCYNC_REQUIRE_REAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def _req(method: str, target: str, status: int = 200, size: int = 0) -> LoggedRequest:
    path, _, query = target.partition("?")
    return LoggedRequest(method, path, query, classify(method, path, query), status, size, None)


def test_classify_distribution_paths() -> None:
    assert classify("GET", "/v2/") == "ping"
    assert classify("HEAD", f"/v2/a/b/blobs/{DIGEST_A}") == "blob_head"
    assert classify("GET", f"/v2/a/b/blobs/{DIGEST_A}") == "blob_get"
    assert classify("POST", "/v2/a/blobs/uploads/", f"mount={DIGEST_A}&from=b") == "mount"
    assert classify("POST", "/v2/a/blobs/uploads/") == "upload_post"
    assert classify("PATCH", "/v2/a/blobs/uploads/u1", "_state=x") == "upload_patch"
    assert classify("PUT", "/v2/a/blobs/uploads/u1", f"digest={DIGEST_A}") == "upload_put"
    assert classify("HEAD", "/v2/a/manifests/v1") == "manifest_head"
    assert classify("PUT", "/v2/a/manifests/v1") == "manifest_put"
    assert classify("GET", "/v2/a/tags/list") == "tags_list"
    assert classify("GET", f"/v2/a/referrers/{DIGEST_A}") == "referrers"


def test_tally_counts_duplicates_mounts_and_throttles() -> None:
    source = [
        _req("GET", "/v2/"),
        _req("GET", f"/v2/a/blobs/{DIGEST_A}", size=10),
        _req("GET", f"/v2/b/blobs/{DIGEST_A}", size=10),
        _req("GET", f"/v2/a/blobs/{DIGEST_B}", size=5),
        _req("GET", f"/v2/a/blobs/{DIGEST_B}", status=429),
    ]
    target = [
        _req("POST", f"/v2/m/a/blobs/uploads/?mount={DIGEST_A}&from=m/a", status=202),
        _req("PUT", f"/v2/m/a/blobs/uploads/u1?digest={DIGEST_A.replace(':', '%3A')}", 201),
        _req("POST", f"/v2/m/b/blobs/uploads/?mount={DIGEST_A}&from=m/a", status=201),
        _req("POST", f"/v2/m/b/blobs/uploads/?mount={DIGEST_B}&from=m/b", status=201),  # probe
    ]
    run = tally(ToolRun("x", "cold", 1.0, 0, 1.0, tags=1), source, target, {DIGEST_A: 10})
    assert run.requests == 9
    assert (run.source_requests, run.target_requests) == (5, 4)
    assert run.source_blob_gets == 3  # the 429 is not a GET that delivered the blob
    assert run.duplicate_blob_gets == 1  # DIGEST_A twice (from two repositories)
    assert run.mounts == 1  # the self-mount probe answered 201 is not a mount
    assert run.throttled == 1
    assert run.bytes_pulled == 25
    assert run.bytes_pushed == 10
    assert run.by_kind["mount"] == 3


def test_ratios_per_phase() -> None:
    runs = [
        ToolRun("ocync", "cold", 1.0, 0, 1.0, tags=4, requests=50),
        ToolRun("skopeo", "cold", 4.0, 0, 1.0, tags=4, requests=100),
        ToolRun("ocync", "warm", 1.0, 0, 1.0, tags=4, requests=6, target_requests=1),
    ]
    got = ratios(runs)
    assert got["cold_request_ratio"] == 0.5
    assert got["cold_wall_ratio"] == 0.25
    assert got["ocync_warm_requests_per_tag"] == 1.5
    assert "warm_request_ratio" not in got  # no skopeo warm run to compare with
    assert "cold_wall_ratio_median" not in got  # one cold sample only


def test_ratios_median_of_cold_samples() -> None:
    runs = []
    for phase, ocync_wall in (("cold", 3.0), ("cold#2", 1.0), ("cold#3", 2.0)):
        runs.append(ToolRun("ocync", phase, ocync_wall, 0, 1.0, tags=4, requests=50))
        runs.append(ToolRun("skopeo", phase, 4.0, 0, 1.0, tags=4, requests=100))
    got = ratios(runs)
    assert got["cold_wall_ratio_median"] == 0.5
    assert got["cold_request_ratio_median"] == 0.5


def test_cold_sync_ocync_fewer_requests_than_skopeo(tmp_path: Path, skopeo: str) -> None:
    require_docker_registry()  # the `skopeo` fixture skips (or fails in CI) without skopeo
    spec = CorpusSpec(
        seed=11,
        repositories=2,
        tags_per_repo=2,
        platforms=("linux/amd64", "linux/arm64"),
        layers_per_image=2,
        layer_size=(1024, 4096),
        shared_base_layers=1,
    )
    corpus = build_corpus(spec)
    with (
        DistributionProcess(tmp_path / "source") as source,
        DistributionProcess(tmp_path / "t-ocync") as t_ocync,
        DistributionProcess(tmp_path / "t-skopeo") as t_skopeo,
    ):
        bench = SideBySide(
            "smoke", tmp_path, corpus, source, {"ocync": t_ocync, "skopeo": t_skopeo}
        )
        bench.seed()
        bench.phase("cold", verify=True)
    by_tool = {run.tool: run for run in bench.runs}
    ocync, skopeo = by_tool["ocync"], by_tool["skopeo"]
    for run in (ocync, skopeo):
        assert run.exit_code == 0, run.note
        assert run.failed_images == 0, run.note
        assert run.verify_problems == 0, run.note
        # Every unique blob came from the source (nothing was already at the target).
        assert run.source_blob_gets >= len(corpus.blobs)
        assert run.requests > 0
    assert ocync.duplicate_blob_gets == 0
    assert ocync.source_blob_gets == len(corpus.blobs)
    assert ocync.reported_failed == 0
    assert ocync.requests < skopeo.requests, (ocync.by_kind, skopeo.by_kind)
    # skopeo pings /v2/ per image and HEADs every blob; ocync does neither.
    assert ocync.by_kind.get("blob_head", 0) < skopeo.by_kind.get("blob_head", 0)
    assert ocync.by_kind.get("ping", 0) < skopeo.by_kind.get("ping", 0)


@pytest.mark.parametrize("n", [1, 3])
def test_target_repo_mapping_matches_skopeo_unscoped(n: int) -> None:
    from stress.syncbench import target_repo

    assert target_repo(f"corpus/repo{n}") == f"mirror/repo{n}"
    assert target_repo(f"a/b/repo{n}") == f"mirror/repo{n}"
