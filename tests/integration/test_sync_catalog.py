"""Pattern mappings (``from: team/*``) as real ``ocync`` processes against the mock's catalog:
every ``Link`` page of ``GET /v2/_catalog`` is followed (250 repositories, 100 per page: 3
requests, 250 images), ``exclude`` and the suffix kept by ``to``, ``*`` vs ``**``, a literal
mapping winning over an expansion onto the same target, ``--shard``, ``--dry-run`` naming
the repositories and their tags, the GHCR profile refused with exit 3, and docker-registry
(CNCF distribution) as the catalog source."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from mockregistry.store import ManifestRecord
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageResult, ImageStatus
from ocync.oci.repopattern import RepoPattern
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.registries import DistributionProcess
from tests.integration.imageseed import SeedImage, make_image, push_image

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


async def ocync(*argv: str) -> tuple[int, str, str]:
    done = await trio.run_process([sys.executable, "-m", "ocync", *argv], capture_stdout=True,
                                  capture_stderr=True, check=False, env=ENV)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def seed(store: object, repo: str, image: SeedImage) -> str:
    """Put one image straight into the mock's store (no requests counted)."""
    for digest, data in image.blobs.items():
        store.put_content(str(digest), data)  # type: ignore[attr-defined]
        store.link_blob(repo, str(digest))  # type: ignore[attr-defined]
    record = ManifestRecord(digest=str(image.digest), media_type=image.media_type, size=len(image.manifest))
    store.put_manifest(repo, record, image.manifest, image.tag)  # type: ignore[attr-defined]
    return str(image.digest)


def target_digest(store: object, repo: str, ref: str) -> str | None:
    record = store.resolve(repo, ref)  # type: ignore[attr-defined]
    return None if record is None else str(record.digest)


def write_config(path: Path, src: str, dst: str, mappings: str, src_extra: str = "") -> Path:
    path.write_text(
        f"global: {{cache_dir: {path.parent / 'cache'}}}\n"
        f"registries:\n  src: {{url: '{src}'{src_extra}}}\n  dst: {{url: '{dst}'}}\n"
        f"defaults: {{source: src, targets: dst}}\nmappings:\n{mappings}"
    )
    return path


@pytest.mark.slow
async def test_every_catalog_page_is_followed_250_repositories(tmp_path: Path) -> None:
    """regclient's bug (a client stopping after the first 100) would find 100 of them."""
    rng = random.Random(250)
    async with serve_mock(MockOptions(catalog_page_size=100, seed=1)) as src, serve_mock(
        MockOptions(seed=2)
    ) as dst:
        digests = {}
        for i in range(250):
            repo = f"team/app-{i:03d}"
            digests[repo] = seed(src.store, repo, make_image(rng, "v1", layers=1, layer_size=64))
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host,
                           "  - {from: 'team/*', to: 'mirror/team/*'}\n")
        code, out, err = await ocync("sync", "-c", str(cfg), "--json", "-q")
        assert code == 0, err
        report = json.loads(out)
        assert src.stats()["by_kind"]["catalog"] == 3  # 100 + 100 + 50
        synced = [r for r in report["images"] if r["status"] == "synced"]
        assert len(synced) == 250
        for repo, digest in digests.items():
            assert target_digest(dst.store, f"mirror/{repo}", "v1") == digest, repo
        namespaces = report["plan"]["namespaces"]
        assert [(n["catalog_pages"], n["listed"], n["matched"], n["complete"]) for n in namespaces] == [
            (3, 250, 250, True)
        ]


async def test_exclude_suffix_depth_and_literal_mapping_wins(tmp_path: Path) -> None:
    rng = random.Random(7)
    async with serve_mock(MockOptions(catalog_page_size=2, seed=1)) as src, serve_mock(
        MockOptions(seed=2)
    ) as dst:
        images = {r: make_image(rng, "v1", layers=1, layer_size=64)
                  for r in ("team/a", "team/b", "team/old-c", "team/sub/d", "other/e")}
        digest = {r: seed(src.store, r, img) for r, img in images.items()}
        mappings = (
            "  - {from: 'team/*', to: 'mirror/*', exclude: ['team/old-*']}\n"
            "  - {from: 'team/**', to: 'deep/*'}\n"
            "  - {from: other/e, to: mirror/a}\n"  # a literal mapping onto an expansion's target
        )
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, mappings)
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        # `*`: one more component, excluded old-c, and mirror/a is the literal mapping's
        assert target_digest(dst.store, "mirror/a", "v1") == digest["other/e"]
        assert target_digest(dst.store, "mirror/b", "v1") == digest["team/b"]
        assert dst.store.repo("mirror/old-c") is None
        assert dst.store.repo("mirror/sub/d") is None
        assert "skipped dst/mirror/a, which mappings[2]" in err
        # `**`: any depth, the suffix kept whole
        for repo in ("team/a", "team/b", "team/old-c", "team/sub/d"):
            assert target_digest(dst.store, "deep/" + repo.removeprefix("team/"), "v1") == digest[repo]
        assert dst.store.repo("deep/e") is None
        # 5 repositories, 2 per page: 3 catalog requests per pattern mapping
        assert src.stats()["by_kind"]["catalog"] == 6

        # --dry-run names each pattern's repositories and the tags it would copy
        (tmp_path / "cache").joinpath("transfer-cache.json").unlink()
        code, out, err = await ocync("sync", "-c", str(cfg), "--dry-run", "--no-cache")
        assert code == 0, err
        lines = out.splitlines()
        assert any(line.endswith("5 repositories listed, 3 match team/* (1 excluded, 1 written by another mapping)") for line in lines), out
        assert "  repository team/sub/d" in lines
        assert any("[team/sub/d]: 1 tags listed, 1 selected" in line for line in lines), out
        assert sum(1 for line in lines if line.startswith("  up to date: 1 tag(s)")) == 6, out

        # expand shows the patterns as written; --catalog names each repository, leaves
        # mirror/a to the literal mapping, and prints a config that validates
        code, out, err = await ocync("expand", str(cfg), "--json")
        assert code == 0, err
        assert [m["from"] for m in json.loads(out)["mappings"]] == ["team/*", "team/**", "other/e"]
        code, out, err = await ocync("expand", str(cfg), "--catalog", "--json")
        assert code == 0, err
        expanded = [(m["from"], m["to"]) for m in json.loads(out)["mappings"]]
        assert expanded == [
            ("team/b", "mirror/b"),
            ("team/a", "deep/a"), ("team/b", "deep/b"), ("team/old-c", "deep/old-c"), ("team/sub/d", "deep/sub/d"),
            ("other/e", "mirror/a"),
        ]
        code, out, err = await ocync("expand", str(cfg), "--catalog")
        assert code == 0, err
        literal = tmp_path / "literal.yaml"
        literal.write_text(out)
        code, out, err = await ocync("validate", str(literal))
        assert code == 0, err


async def test_shards_split_the_expanded_repositories(tmp_path: Path) -> None:
    rng = random.Random(3)
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        repos = [f"team/r{i}" for i in range(12)]
        for r in repos:
            seed(src.store, r, make_image(rng, "v1", layers=1, layer_size=64))
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, "  - {from: 'team/*', to: 'm/*'}\n")
        copied: list[str] = []
        for index in range(3):
            code, out, err = await ocync("sync", "-c", str(cfg), "--json", "--shard", f"{index}/3")
            assert code == 0, err
            shard_copies = [r["target"] for r in json.loads(out)["images"] if r["status"] == "synced"]
            assert len(shard_copies) < len(repos)  # 12 keys over 3 shards: none takes all
            copied += shard_copies
        assert sorted(copied) == sorted(f"dst/m/{r.removeprefix('team/')}:v1" for r in repos)


@pytest.mark.parametrize(
    "src_extra",
    [pytest.param(", profile: ghcr", id="profile"), pytest.param("", id="host-ghcr.io")],
)
async def test_ghcr_source_pattern_is_a_config_error(tmp_path: Path, src_extra: str) -> None:
    src = "127.0.0.1:1" if src_extra else "ghcr.io"
    cfg = write_config(tmp_path / "ocync.yaml", src, "127.0.0.1:2",
                       "  - {from: 'myorg/*', to: 'mirror/*'}\n", src_extra)
    for command in ("validate", "expand", "sync"):
        argv = (command, str(cfg)) if command != "sync" else (command, "-c", str(cfg))
        code, out, err = await ocync(*argv)
        assert code == 3, (command, out, err)
        assert "Traceback" not in err
        (line,) = [x for x in err.splitlines() if x.startswith("ocync: error:")]
        assert "mappings[0].from" in line and "has no catalog API" in line
        assert "list the repositories as separate mappings" in line


@pytest.mark.parametrize(
    ("mapping", "needle"),
    [
        pytest.param("{from: 'team/*', to: mirror/one}", "mappings[0].to: `from: team/*` is a pattern",
                     id="to-without-star"),
        pytest.param("{from: app, to: 'm/*'}", "mappings[0].to: `to: m/*` is a pattern", id="literal-from"),
        pytest.param("{from: app, exclude: [x]}", "mappings[0].exclude: `exclude` needs a pattern",
                     id="exclude-without-pattern"),
        pytest.param("{from: 'te*m/*'}", "mappings[0].from: 'te*m/*': a pattern ends with /*",
                     id="wildcard-inside"),
    ],
)
async def test_bad_patterns_are_one_line_exit_3(tmp_path: Path, mapping: str, needle: str) -> None:
    cfg = write_config(tmp_path / "ocync.yaml", "127.0.0.1:1", "127.0.0.1:2", f"  - {mapping}\n")
    code, out, err = await ocync("validate", str(cfg))
    assert code == 3
    (line,) = err.splitlines()
    assert needle in line, line


async def test_distribution_catalog_as_source(tmp_path: Path) -> None:
    """docker-registry (CNCF distribution 2.8) as the source: its catalog's answer (one page
    for four repositories) expands the pattern like the mock's."""
    rng = random.Random(11)
    with DistributionProcess(tmp_path / "distribution", access_log=False) as reg:
        pushed = {}
        async with RegistryClient(reg.url, ClientSettings(auth=AuthSettings(kind="anonymous"))) as client:
            for repo in ("team/x", "team/y", "team/z/deep", "solo"):
                pushed[repo] = str(await push_image(client, repo, make_image(rng, "v1", layers=1, layer_size=64)))
        async with serve_mock(MockOptions(seed=2)) as dst:
            cfg = write_config(tmp_path / "ocync.yaml", reg.host, dst.host, "  - {from: 'team/*', to: 'copy/*'}\n")
            code, out, err = await ocync("sync", "-c", str(cfg), "--json")
            assert code == 0, err
            assert target_digest(dst.store, "copy/x", "v1") == pushed["team/x"]
            assert target_digest(dst.store, "copy/y", "v1") == pushed["team/y"]
            assert dst.store.repo("copy/z/deep") is None and dst.store.repo("copy/solo") is None
            assert json.loads(out)["summary"]["requests_by_kind"]["catalog"] == 1


async def test_expansion_streams_into_the_copies() -> None:
    """The catalog is paged as discovery consumes it: with a small engine (one transfer, one
    channel slot, two mappings in discovery) the first image is copied before the catalog's
    last page is asked for, so a 10,000-repository namespace is never held as a plan."""
    rng = random.Random(12)
    async with serve_mock(MockOptions(catalog_page_size=5, seed=1)) as src, serve_mock(
        MockOptions(seed=2)
    ) as dst:
        for i in range(60):
            seed(src.store, f"team/r{i:02d}", make_image(rng, "v1", layers=1, layer_size=64))
        anon = ClientSettings(auth=AuthSettings(kind="anonymous"))
        pages_at_first_copy: list[int] = []

        def on_result(result: ImageResult) -> None:
            if not pages_at_first_copy:
                pages_at_first_copy.append(src.stats()["by_kind"]["catalog"])

        spec = MappingSpec(name="team", source="src", source_repo="team/*",
                           targets=(TargetRepo("dst", "m/*"),), source_pattern=RepoPattern.parse("team/*"))
        async with RegistryClient(src.url, anon) as sc, RegistryClient(dst.url, anon) as dc:
            s, d = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
            engine = SyncEngine([spec], {"src": s}, {"dst": d}, TransferCache(),
                                EngineOptions(max_concurrent_transfers=1, channel_size=1, discovery_concurrency=2),
                                on_result=on_result)
            report = await engine.run()
        assert report.count(ImageStatus.SYNCED) == 60
        assert src.stats()["by_kind"]["catalog"] == 12
        assert pages_at_first_copy and pages_at_first_copy[0] < 12, pages_at_first_copy
        assert [n.to_dict()["listed"] for n in engine.namespaces] == [60]


async def test_catalog_behind_token_auth(tmp_path: Path) -> None:
    """The catalog's token has scope registry:catalog:* (distribution's token auth), the
    repositories' tokens their own pull scopes."""
    rng = random.Random(13)
    options = MockOptions(auth="token", users={"alice": "pat-a"}, user_namespaces={"alice": ["team"]},
                          catalog_page_size=2, seed=1)
    async with serve_mock(options) as src, serve_mock(MockOptions(seed=2)) as dst:
        digests = {r: seed(src.store, r, make_image(rng, "v1", layers=1, layer_size=64))
                   for r in ("team/a", "team/b", "team/c")}
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, "  - {from: 'team/*', to: 'm/*'}\n",
                           ", credentials: {username: alice, password: pat-a}")
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        for repo, digest in digests.items():
            assert target_digest(dst.store, "m/" + repo.removeprefix("team/"), "v1") == digest
        assert src.stats()["by_kind"]["catalog"] == 2


async def test_catalog_refused_is_an_auth_failure(tmp_path: Path) -> None:
    """Anonymous tokens carry no registry:catalog:* grant: the listing fails by name, exit 4."""
    options = MockOptions(auth="token", users={"alice": "pat-a"}, public=["team/a"], seed=1)
    async with serve_mock(options) as src, serve_mock(MockOptions(seed=2)) as dst:
        seed(src.store, "team/a", make_image(random.Random(1), "v1", layers=1, layer_size=64))
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, "  - {from: 'team/*', to: 'm/*'}\n")
        code, out, err = await ocync("sync", "-c", str(cfg))
        assert code == 4, (out, err)
        (line,) = [x for x in err.splitlines() if x.startswith("ocync: error:")]
        assert "mappings[0]" in line and "listing the catalog" in line, line
        assert "Traceback" not in err and dst.store.repo("m/a") is None


async def test_analyze_counts_the_expanded_repositories_and_pins(tmp_path: Path) -> None:
    rng = random.Random(14)
    async with serve_mock(MockOptions(catalog_page_size=2, seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        for repo in ("team/a", "team/b", "team/c", "other/x"):
            seed(src.store, repo, make_image(rng, "v1", layers=1, layer_size=64))
        pin = seed(src.store, "other/x", make_image(rng, "v2", layers=1, layer_size=64))
        mappings = f"  - {{from: 'team/*', to: 'm/*'}}\n  - {{from: other/x, digests: ['{pin}']}}\n"
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, mappings)
        code, out, err = await ocync("analyze", "-c", str(cfg), "--json")
        assert code == 0, err
        analysis = json.loads(out)
        assert analysis["tags"] == 4 and analysis["images"] == 4  # 3 repositories' v1 + the pin
        assert analysis["unique_blobs"] == 8  # config + layer each
