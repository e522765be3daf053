"""Image copies (a one-image run of the sync engine, as ``ocync copy`` does) between the mock
(ghcr and generic profiles) and Debian's docker-registry, verified bit-for-bit with skopeo;
GHCR upload discipline; mounts; pulling once for several targets (staging); integrity
failures; retries under injected faults; the ``ocync copy`` command."""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import ArtifactPolicy, MappingSpec, TargetRepo
from ocync.engine.endpoints import TargetEndpoint
from ocync.engine.pipeline import SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus, RunReport
from ocync.engine.singlecopy import CopyOutcome, one_image_mapping, run_one
from ocync.engine.staging import BlobStage
from ocync.errors import IntegrityError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor
from ocync.oci.tagfilter import TagFilter
from ocync.registry.auth import AuthSettings
from ocync.registry.blobs import BlobTarget, copy_blob, copy_blob_to, verified_chunks
from ocync.registry.client import ClientSettings, RegistryClient
from ocync.registry.pool import ClientPool

sys.path.insert(0, str(Path(__file__).parent))
from imageseed import SeedImage, make_image, make_index, push_image  # noqa: E402

ALICE = AuthSettings(kind="basic", username="alice", password="pat-alice")
ROOT = Path(__file__).resolve().parents[2]


def ghcr_options(**kw: object) -> MockOptions:
    base: dict[str, object] = dict(profile="ghcr", auth="token", users={"alice": "pat-alice"}, public=["*"], seed=1)
    base.update(kw)
    return MockOptions(**base)  # type: ignore[arg-type]


@asynccontextmanager
async def clients(src_url: str, dst_url: str, profile: str, auth: AuthSettings = ALICE) -> AsyncIterator[tuple[RegistryClient, RegistryClient]]:
    settings = ClientSettings(auth=auth, profile=profile, attempts=8)
    async with ClientPool(seed=3) as pool:
        yield await pool.client(src_url, settings), await pool.client(dst_url, settings)


async def skopeo_digest(skopeo: str, host: str, ref: str, creds: str | None = None) -> Digest:
    args = [skopeo, "inspect", "--raw", "--tls-verify=false"]
    if creds:
        args += ["--creds", creds]
    result = await trio.run_process([*args, f"docker://{host}/{ref}"], capture_stdout=True, capture_stderr=True)
    return Digest.of(result.stdout)


def uploaded_blobs(image: SeedImage) -> int:
    return len(image.all_blobs())


async def copy_image(
    source: RegistryClient, source_repo: str, ref: str, target: RegistryClient, target_repo: str, tag: str | None
) -> CopyOutcome:
    """``ocync copy``'s engine run over these clients (one endpoint when both are one client)."""
    src = ClientEndpoint("src", source)
    dst = src if target is source else ClientEndpoint("dst", target)
    mapping = one_image_mapping("src", source_repo, ref, "dst", target_repo, tag)
    return await run_one(mapping, src, dst)


async def sync_one_tag(
    stage_dir: Path, source: RegistryClient, repo: str, tag: str, targets: dict[str, tuple[RegistryClient, str]]
) -> RunReport:
    """One tag of ``source`` to several targets (name -> client, repository) with staging."""
    mapping = MappingSpec(
        name="m", source="src", source_repo=repo,
        targets=tuple(TargetRepo(name, target_repo) for name, (_, target_repo) in targets.items()),
        tag_filter=TagFilter(glob=(), include=(tag,)), artifacts=ArtifactPolicy(enabled=False), list_tags=False,
    )
    endpoints: dict[str, TargetEndpoint] = {name: ClientEndpoint(name, client) for name, (client, _) in targets.items()}
    stage = BlobStage(stage_dir, size_limit=None)
    try:
        return await SyncEngine([mapping], {"src": ClientEndpoint("src", source)}, endpoints, TransferCache(), stage=stage).run()
    finally:
        stage.cleanup()


@pytest.mark.real_registry
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi-arch"])
async def test_ghcr_mock_to_mock_with_token_auth_and_redirects(multi: bool, skopeo: str) -> None:
    rng = random.Random(11)
    image = make_index(rng, "v1") if multi else make_image(rng, "v1", layers=3)
    async with serve_mock(ghcr_options()) as src, serve_mock(ghcr_options(public=[])) as dst:
        async with clients(src.url, dst.url, "ghcr") as (s, d):
            source_digest = await push_image(s, "alice/app", image)
            src.reset_stats()
            summary = (await copy_image(s, "alice/app", "v1", d, "alice/mirror", "v1")).result
            assert summary.digest == str(source_digest)
            assert summary.blobs_transferred == uploaded_blobs(image)
            assert s.statistics().by_kind["storage_get"] == uploaded_blobs(image)
        dst_stats, src_stats = dst.stats(), src.stats()
        # GHCR discipline: exactly one PATCH per uploaded blob, never DIGEST_INVALID, no leaks
        assert dst_stats["by_kind"]["upload_patch"] == uploaded_blobs(image)
        assert dst_stats["digest_invalid"] == 0
        assert dst_stats["auth_leaks"] == 0 and src_stats["auth_leaks"] == 0
        assert src_stats["by_kind"]["storage_get"] == uploaded_blobs(image)
        assert await skopeo_digest(skopeo, src.host, "alice/app:v1") == source_digest
        assert await skopeo_digest(skopeo, dst.host, "alice/mirror:v1", "alice:pat-alice") == source_digest


async def test_generic_mock_to_mock_and_second_copy_is_free() -> None:
    rng = random.Random(12)
    image = make_index(rng, "2.0", arches=("amd64", "arm64", "s390x"))
    async with serve_mock(MockOptions(seed=2)) as src, serve_mock(MockOptions(seed=3)) as dst:
        async with clients(src.url, dst.url, "generic", AuthSettings(kind="anonymous")) as (s, d):
            digest = await push_image(s, "lib/app", image)
            first = (await copy_image(s, "lib/app", "2.0", d, "mirror/app", "2.0")).result
            first_writes = dst.stats()["by_kind"]
            dst.reset_stats()
            again = (await copy_image(s, "lib/app", "2.0", d, "mirror/app", "2.0")).result
            head = await d.head_manifest("mirror/app", "2.0")
        assert first.digest == again.digest == str(digest) and head is not None and head.digest == digest
        assert first.blobs_transferred == uploaded_blobs(image) and first_writes["manifest_put"] == 4
        # the second copy finds the tag in place: it writes nothing at all
        assert again.status is ImageStatus.SKIPPED and again.blobs_transferred == 0
        writes = {k: n for k, n in dst.stats()["by_kind"].items() if k in _WRITES and n}
        assert writes == {}, writes


@pytest.mark.real_registry
async def test_distribution_to_mock_and_back(distribution: object, skopeo: str) -> None:
    rng = random.Random(13)
    image = make_index(rng, "v3")
    dist_url = distribution.url  # type: ignore[attr-defined]
    dist_host = distribution.host  # type: ignore[attr-defined]
    async with serve_mock(ghcr_options(public=[])) as mock:
        settings_dist = ClientSettings(auth=AuthSettings(kind="anonymous"))
        settings_mock = ClientSettings(auth=ALICE, profile="ghcr")
        async with ClientPool() as pool:
            dist = await pool.client(dist_url, settings_dist)
            mk = await pool.client(mock.url, settings_mock)
            digest = await push_image(dist, "seed/app", image)
            to_mock = (await copy_image(dist, "seed/app", "v3", mk, "alice/app", "v3")).result
            back = (await copy_image(mk, "alice/app", "v3", dist, "back/app", "v3-back")).result
            # same registry, other repository: blobs are mounted, not transferred
            mounted = (await copy_image(dist, "back/app", "v3-back", dist, "third/app", "v3")).result
        assert to_mock.digest == back.digest == mounted.digest == str(digest)
        assert mounted.blobs_mounted == uploaded_blobs(image) and mounted.blobs_transferred == 0
        assert mock.stats()["digest_invalid"] == 0
    assert await skopeo_digest(skopeo, dist_host, "seed/app:v3") == digest
    assert await skopeo_digest(skopeo, dist_host, "back/app:v3-back") == digest


async def test_unfulfilled_mount_reuses_its_session() -> None:
    rng = random.Random(14)
    image = make_image(rng, "v1", layers=1)
    async with serve_mock(ghcr_options()) as src, serve_mock(ghcr_options(users={"alice": "pat-alice", "bob": "pat-bob"})) as dst:
        async with clients(src.url, dst.url, "ghcr") as (s, d):
            await push_image(s, "alice/app", image)
            manifest = await s.get_manifest("alice/app", "v1")
            layer = manifest.layers[0]
            d.want_push("alice/app")
            assert await d.head_blob("alice/app", layer.digest) is None  # learns the challenge
            dst.reset_stats()
            mount = await d.mount_blob("alice/app", layer.digest, "alice/elsewhere")
            assert not mount.mounted and mount.session is not None
            attempts = await copy_blob_to(s, "alice/app", layer, d, "alice/app", session=mount.session)
            assert attempts == 1
            assert await d.head_blob("alice/app", layer.digest) == layer.size
        by_kind = dst.stats()["by_kind"]
        assert (by_kind["mount"], by_kind["upload_post"], by_kind["upload_patch"], by_kind["upload_put"]) == (1, 0, 1, 1)
        # a same-namespace mount where the blob exists is one request
        async with clients(dst.url, dst.url, "ghcr") as (d1, d2):
            mounted = await d2.mount_blob("alice/other", layer.digest, "alice/app")
        assert mounted.mounted and mounted.session is None


async def test_staging_pulls_once_for_many_targets(tmp_path: Path) -> None:
    """Targets no one mount can reach (two registries, a GHCR namespace): each blob is pulled
    from the source once and pushed to every target from the staging directory; a target
    that refuses the push does not stop the others."""
    rng = random.Random(15)
    image = make_image(rng, "v1", layers=1, layer_size=300_000)
    blobs = uploaded_blobs(image)
    async with (serve_mock(MockOptions()) as src, serve_mock(MockOptions()) as t1,
                serve_mock(ghcr_options(public=[])) as t2, serve_mock(ghcr_options()) as t3):
        async with ClientPool() as pool:
            s = await pool.client(src.url, ClientSettings())
            a = await pool.client(t1.url, ClientSettings())
            b = await pool.client(t2.url, ClientSettings(auth=ALICE, profile="ghcr"))
            digest = await push_image(s, "lib/x", image)
            before = s.statistics().by_kind.get("blob_get", 0)
            targets = {"a": (a, "m/x"), "b": (b, "alice/x"), "a2": (a, "m/y")}
            report = await sync_one_tag(tmp_path / "stage1", s, "lib/x", "v1", targets)
            assert [r.status for r in report.results] == [ImageStatus.SYNCED] * 3, report.describe()
            assert s.statistics().by_kind["blob_get"] == before + blobs
            for client, repo in targets.values():
                for blob in image.blobs:
                    assert await client.head_blob(repo, blob) is not None
                head = await client.head_manifest(repo, "v1")
                assert head is not None and head.digest == digest
            # one target refused (anonymous: it may pull but not push): the other still gets
            # every blob, each pulled once
            anonymous = await pool.client(t3.url, ClientSettings(auth=AuthSettings(kind="anonymous"), profile="ghcr"))
            before = s.statistics().by_kind.get("blob_get", 0)
            report = await sync_one_tag(tmp_path / "stage2", s, "lib/x", "v1", {"a": (a, "m/z"), "anon": (anonymous, "alice/z")})
            by_target = {r.target.split("/")[0]: r for r in report.results}
            assert by_target["a"].status is ImageStatus.SYNCED, report.describe()
            assert by_target["anon"].status is ImageStatus.FAILED and by_target["anon"].auth_failure
            # Each blob is pulled once, except that the refused target may have been the one
            # pulling a blob into staging when its failure cancelled its other blobs: the
            # surviving target then pulls that one again (one blob at most: the refusal is
            # the first upload, so at most one other download of it is in flight).
            assert before + blobs <= s.statistics().by_kind["blob_get"] <= before + blobs + 1
            head = await a.head_manifest("m/z", "v1")
            assert head is not None and head.digest == digest


async def test_a_target_copies_from_any_blob_source() -> None:
    """A registry target streams from any BlobSource (here bytes in memory), not only from
    another registry: the seam an OCI image layout on disk plugs into."""
    data = random.Random(22).randbytes(100_000)
    desc = Descriptor(mt.OCI_LAYER, Digest.of(data), len(data))

    class MemorySource:
        name = "memory"

        @asynccontextmanager
        async def open_blob(self, repo: str, wanted: Descriptor) -> AsyncIterator[AsyncIterator[bytes]]:
            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(data), 30_000):
                    yield data[start:start + 30_000]

            yield verified_chunks(chunks(), wanted, f"memory blob {repo}")

    async with serve_mock(MockOptions()) as dst:
        async with RegistryClient(dst.url) as d:
            await ClientEndpoint("dst", d).copy_blob(MemorySource(), "x", "m/x", desc, None)
            assert await d.head_blob("m/x", desc.digest) == len(data)
        assert dst.stats()["by_kind"]["upload_put"] == 1


async def test_corrupt_source_fails_with_integrity_error_and_leaves_nothing() -> None:
    rng = random.Random(16)
    image = make_image(rng, "v1", layers=2, layer_size=100_000)
    async with serve_mock(MockOptions(seed=4)) as clean, serve_mock(ghcr_options(corrupt_rate=1.0)) as src, serve_mock(ghcr_options(public=[])) as dst:
        async with clients(src.url, dst.url, "ghcr") as (s, d):
            await push_image(s, "alice/app", image)
            with pytest.raises(IntegrityError) as info:
                await copy_image(s, "alice/app", "v1", d, "alice/app", "v1")
            message = str(info.value)
            assert "digest mismatch" in message
            assert any(str(digest) in message for digest in image.blobs)
            assert await d.head_manifest("alice/app", "v1") is None
            for digest in image.blobs:
                assert await d.head_blob("alice/app", digest) is None
        stats = dst.stats()
        assert stats["blobs"] == 0 and stats["digest_invalid"] == 0
        assert "by_kind" in clean.stats()


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_copies_succeed_under_injected_faults(profile: str) -> None:
    rng = random.Random(17)
    images = [make_index(rng, f"v{i}", layers=3, layer_size=150_000) for i in range(3)]
    faults = dict(reset_rate=0.05, truncate_rate=0.05, fault_rate=0.05)
    options = ghcr_options(**faults) if profile == "ghcr" else MockOptions(seed=9, **faults)  # type: ignore[arg-type]
    dst_options = ghcr_options(public=[], seed=5, **faults) if profile == "ghcr" else MockOptions(seed=10, **faults)  # type: ignore[arg-type]
    auth = ALICE if profile == "ghcr" else AuthSettings(kind="anonymous")
    async with serve_mock(options) as src, serve_mock(dst_options) as dst:
        async with clients(src.url, dst.url, profile, auth) as (s, d):
            digests = [await push_image(s, "alice/app", image) for image in images]
            for image, digest in zip(images, digests, strict=True):
                summary = (await copy_image(s, "alice/app", image.tag, d, "alice/mirror", image.tag)).result
                assert summary.digest == str(digest)
            for image, digest in zip(images, digests, strict=True):
                head = await d.head_manifest("alice/mirror", image.tag)
                assert head is not None and head.digest == digest
            retried = s.statistics().retries + d.statistics().retries + s.statistics().transport_errors
        injected = sum(src.stats()["faults"].values()) + sum(dst.stats()["faults"].values())
        assert injected > 0 and retried > 0, "the faults must have been exercised"
        assert dst.stats()["digest_invalid"] == 0


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "ocync", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_copy_command(tmp_path: Path) -> None:
    rng = random.Random(18)
    image = make_index(rng, "1.0")
    authfile = tmp_path / "config.json"
    authfile.write_text(json.dumps({"auths": {"placeholder": {}}}))
    async with serve_mock(MockOptions()) as src, serve_mock(ghcr_options(public=[])) as dst:
        async with clients(src.url, dst.url, "generic", AuthSettings(kind="anonymous")) as (s, _):
            digest = await push_image(s, "lib/app", image)
        code, out, err = await run_cli("copy", f"{src.host}/lib/app:1.0", f"{dst.host}/alice/app", "--dst-profile", "ghcr", "--authfile", str(authfile))
        assert code == 4, err  # the target needs credentials
        assert err.startswith("ocync: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
        import base64

        entry = base64.b64encode(b"alice:pat-alice").decode()
        authfile.write_text(json.dumps({"auths": {dst.host: {"auth": entry}}}))
        code, out, err = await run_cli("copy", f"{src.host}/lib/app:1.0", f"{dst.host}/alice/app", "--dst-profile", "ghcr", "--authfile", str(authfile), "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["digest"] == str(digest) and doc["destination"] == f"{dst.host}/alice/app:1.0"
        assert doc["blobs_transferred"] == uploaded_blobs(image) and doc["requests"] > 0
        assert "pat-alice" not in out + err
        code, out, err = await run_cli("copy", f"{src.host}/lib/app:1.0", f"{dst.host}/alice/app:arm", "--platform", "linux/arm64", "--dst-profile", "ghcr", "--authfile", str(authfile))
        assert code == 0, err
        assert "trimmed index: linux/arm64" in out and "already present" in out
        async with clients(dst.url, dst.url, "ghcr") as (d, _):
            trimmed = await d.get_manifest("alice/app", "arm")
            assert [str(c.platform) for c in trimmed.children()] == ["linux/arm64"]
        code, out, err = await run_cli("copy", "Bad//ref", f"{dst.host}/x")
        assert code == 3 and "invalid reference" in err


async def test_monolithic_profile_buffers_small_blobs_and_streams_big_ones() -> None:
    from dataclasses import replace

    from ocync.registry.profiles import GENERIC

    rng = random.Random(19)
    small, big = rng.randbytes(50_000), rng.randbytes(5 * 1024 * 1024)
    profile = replace(GENERIC, name="mono", upload_strategy="monolithic", monolithic_max_bytes=1024 * 1024)
    async with serve_mock(MockOptions()) as src, serve_mock(MockOptions()) as dst:
        for data in (small, big):
            src.store.put_content(str(Digest.of(data)), data)
            src.store.link_blob("lib/x", str(Digest.of(data)))
        async with RegistryClient(src.url) as s, RegistryClient(dst.url, profile=profile) as d:
            for data in (small, big):
                desc = Descriptor(mt.OCI_LAYER, Digest.of(data), len(data))
                [result] = await copy_blob(s, "lib/x", desc, [BlobTarget(d, "m/x")])
                assert result.ok, result.error
                assert await d.head_blob("m/x", desc.digest) == len(data)
            stats = d.statistics()
        assert stats.by_kind["upload_post"] == 2 and stats.by_kind["upload_put"] == 2
        assert stats.bytes_out_by_kind["upload_put"] == len(small) + len(big)


async def test_throttles_are_waited_out_not_failures() -> None:
    rng = random.Random(20)
    image = make_index(rng, "v1", layers=2, layer_size=2000)
    async with serve_mock(ghcr_options()) as src, serve_mock(ghcr_options(public=[], rate_limit="15/1s")) as dst:
        async with clients(src.url, dst.url, "ghcr") as (s, d):
            digest = await push_image(s, "alice/app", image)
            summary = (await copy_image(s, "alice/app", "v1", d, "alice/app", "v1")).result
            stats = d.statistics()
            controller = d.controller.statistics().to_dict()
        assert summary.digest == str(digest)
        assert stats.throttled > 0 and controller["throttles"] == stats.throttled
        assert dst.stats()["throttled"] == stats.throttled
        assert dst.stats()["digest_invalid"] == 0


_WRITES = ("upload_post", "upload_patch", "upload_put", "mount", "manifest_put")


async def test_copy_to_a_destination_digest_pushes_only_that_digest() -> None:
    """``DST@sha256:...`` names what must land at the target: another digest is refused
    before anything is written (exit 3, both digests named); the right one is copied."""
    rng = random.Random(21)
    image = make_index(rng, "1.0")
    other = "sha256:" + "ab" * 32
    async with serve_mock(MockOptions()) as src, serve_mock(MockOptions()) as dst:
        async with clients(src.url, dst.url, "generic", AuthSettings(kind="anonymous")) as (s, _):
            digest = await push_image(s, "lib/app", image)
        for destination in (f"{dst.host}/mirror/app@{other}", f"{dst.host}/mirror/app:1.0@{other}"):
            dst.reset_stats()
            code, out, err = await run_cli("copy", f"{src.host}/lib/app:1.0", destination)
            assert code == 3, err
            assert other in err and str(digest) in err and len(err.strip().splitlines()) == 1, err
            writes = {k: n for k, n in dst.stats()["by_kind"].items() if k in _WRITES and n}
            assert writes == {}, writes
            code, out, err = await run_cli("copy", f"{src.host}/lib/app:1.0", destination, "--json")
            assert code == 3 and json.loads(out)["exit_code"] == 3, out + err
        assert dst.store.repository_names() == []
        code, out, err = await run_cli("copy", f"{src.host}/lib/app:1.0", f"{dst.host}/mirror/app@{digest}")
        assert code == 0, err
        assert str(digest) in out
        async with clients(dst.url, dst.url, "generic", AuthSettings(kind="anonymous")) as (d, _):
            head = await d.head_manifest("mirror/app", str(digest))
            assert head is not None and head.digest == digest


async def test_copy_json_failure_is_a_json_document() -> None:
    """``copy --json`` that fails still prints one JSON object: the error and the exit code."""
    async with serve_mock(MockOptions()) as src, serve_mock(MockOptions()) as dst:
        code, out, err = await run_cli("copy", f"{src.host}/lib/missing:1.0", f"{dst.host}/m/x", "--json")
        assert code == 2, err
        doc = json.loads(out)
        assert doc["ok"] is False and doc["exit_code"] == 2 and doc["interrupted"] is False
        assert doc["source"] == f"{src.host}/lib/missing:1.0"
        assert len(doc["errors"]) == 1 and "lib/missing" in doc["errors"][0]
        assert err.strip() == f"ocync: error: {doc['errors'][0]}"
        code, out, err = await run_cli("copy", "Bad//ref", f"{dst.host}/x", "--json")
        assert code == 3 and json.loads(out)["exit_code"] == 3 and "invalid reference" in err
