"""Referrers a mirror holds that the source does not: a sync adds the source's new
referrers and keeps every one it did not put there.

Targets without the referrers API keep the OCI distribution-spec "Referrers Tag Schema"
index (an image index tagged ``sha256-<hex of subject>``): another client (a signer at the
mirror) may add to it, and a sync that rewrote it from the source's list alone would drop
that entry without a word. Targets with the referrers API list whatever names the subject.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from mockregistry import MockOptions, serve_mock
from ocync.config.resolve import ArtifactPolicy
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus, RunReport
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    CorpusSpec,
    build_corpus,
    make_client,
    push_corpus,
    referrers_tag,
)
from tests.integration.referrerseed import artifact, push_referrer

TOKEN = "pat-alice"
MIRROR_TYPE = "application/vnd.example.mirror-attestation+json"
UPSTREAM_TYPE = "application/vnd.example.signature.late+json"


@dataclass
class Target:
    url: str
    settings: ClientSettings
    creds: tuple[str, str] | None  # for the test's own pushes
    repo_prefix: str


async def engine_sync(src_url: str, src_profile: str, target: Target, maps: list[MappingSpec],
                      cache: TransferCache) -> RunReport:
    controllers = ControllerRegistry()
    src_settings = ClientSettings(auth=AuthSettings(kind="anonymous"), profile=src_profile)
    async with (
        RegistryClient(src_url, src_settings, controllers=controllers) as sc,
        RegistryClient(target.url, target.settings, controllers=controllers) as dc,
    ):
        src, dst = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
        await src.prepare()
        await dst.prepare()
        engine = SyncEngine(maps, {"src": src}, {"dst": dst}, cache,
                            EngineOptions(max_concurrent_transfers=4))
        return await engine.run()


@contextlib.asynccontextmanager
async def open_target(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    if kind == "docker-registry":
        registry = request.getfixturevalue("distribution")  # distribution 2.8: no referrers API
        yield Target(registry.url, ClientSettings(auth=AuthSettings(kind="anonymous")), None, "copy")
        return
    opts = MockOptions(profile=kind, auth="token", users={"alice": TOKEN},
                       user_namespaces={"alice": ["mirror"]}, rate_limit="400/2s", seed=2)
    async with serve_mock(opts) as dst:
        settings = ClientSettings(
            auth=AuthSettings(kind="basic", username="alice", password=TOKEN), profile=kind
        )
        yield Target(dst.url, settings, ("alice", TOKEN), "mirror")


@pytest.mark.parametrize(
    ("target_kind", "src_profile"),
    [
        pytest.param("ghcr", "generic", id="ghcr-target-source-api"),
        pytest.param("ghcr", "ghcr", id="ghcr-target-source-tag-schema"),
        pytest.param("docker-registry", "generic", id="docker-registry-target-source-api",
                     marks=pytest.mark.real_registry),
        pytest.param("docker-registry", "ghcr", id="docker-registry-target-source-tag-schema",
                     marks=pytest.mark.real_registry),
        # the target lists referrers by subject itself (OCI-Subject): same outcome wanted
        pytest.param("generic", "generic", id="referrers-api-target"),
    ],
)
async def test_sync_keeps_referrers_added_at_the_mirror(
    target_kind: str, src_profile: str, request: pytest.FixtureRequest
) -> None:
    corpus = build_corpus(CorpusSpec(seed=31, repositories=1, tags_per_repo=2, referrers_per_image=1))
    async with serve_mock(MockOptions(profile=src_profile, seed=1)) as src, \
            open_target(target_kind, request) as target:
        await push_corpus(corpus, src.url)
        [repo] = sorted(corpus.repos)
        target_repo = f"{target.repo_prefix}/{repo.split('/', 1)[1]}"
        # refresh: always, so the warm run looks for the late upstream referrer although the
        # cache vouches for the tags (the default, cached, would wait for cache_ttl)
        maps = [MappingSpec(name=repo, source="src", source_repo=repo,
                            targets=(TargetRepo("dst", target_repo),),
                            artifacts=ArtifactPolicy(refresh="always"))]
        cache = TransferCache()
        cold = await engine_sync(src.url, src_profile, target, maps, cache)
        assert cold.count(ImageStatus.SYNCED) == len(corpus.images), cold.describe()

        image = corpus.images[0]
        subject = corpus.manifests[image.digest]
        # someone signs the mirrored image at the mirror; the descriptor carries an
        # annotation and a field of their own, which must survive byte for byte
        mine = artifact(subject, MIRROR_TYPE, "mirror-admin")
        mine_desc = {**mine[1].descriptor(), "annotations": {"org.example.signed-at": "mirror"},
                     "x-example-note": "ünïcode stays"}
        api = await push_referrer(target.url, target_repo, subject, mine, target.creds, mine_desc)
        assert api is (target_kind == "generic")
        # ... and upstream signs it later
        late = artifact(subject, UPSTREAM_TYPE, "release-bot")
        await push_referrer(src.url, repo, subject, late, None, late[1].descriptor())

        report = await engine_sync(src.url, src_profile, target, maps, cache)
        assert report.count(ImageStatus.FAILED) == 0 and report.exit_code() == 0, report.describe()
        assert sum(r.referrers for r in report.results) == 1, report.describe()

        upstream = {*image.referrers, late[1].digest}
        async with make_client(*(target.creds or ())) as http:
            for digest, body in [(late[1].digest, late[1].data), (mine[1].digest, mine[1].data)]:
                got = await http.get(f"{target.url}/v2/{target_repo}/manifests/{digest}",
                                     headers={"Accept": MANIFEST_ACCEPT})
                assert got.status_code == 200 and got.content == body
            if api:
                listed = await http.get(f"{target.url}/v2/{target_repo}/referrers/{image.digest}")
                assert listed.status_code == 200
                digests = {d["digest"] for d in listed.json()["manifests"]}
                assert digests >= upstream | {mine[1].digest}, digests
                return
            index = await http.get(
                f"{target.url}/v2/{target_repo}/manifests/{referrers_tag(image.digest)}",
                headers={"Accept": OCI_INDEX},
            )
        assert index.status_code == 200
        entries = index.json()["manifests"]
        by_digest = {e["digest"]: e for e in entries}
        # both: the mirror's own entry exactly as pushed, and upstream's new one
        assert mine[1].digest in by_digest, [e["digest"] for e in entries]
        assert by_digest[mine[1].digest] == mine_desc
        mine_bytes = json.dumps(mine_desc, separators=(",", ":")).encode()  # as pushed
        assert mine_bytes in index.content
        assert set(by_digest) == upstream | {mine[1].digest}
        assert len(entries) == len(by_digest)  # nothing listed twice

        # a further run finds nothing new and leaves the index as it is
        again = await engine_sync(src.url, src_profile, target, maps, TransferCache())
        assert again.count(ImageStatus.SKIPPED) == len(corpus.images), again.describe()
        async with make_client(*(target.creds or ())) as http:
            after = await http.get(
                f"{target.url}/v2/{target_repo}/manifests/{referrers_tag(image.digest)}",
                headers={"Accept": OCI_INDEX},
            )
        assert after.content == index.content
