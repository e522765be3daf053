"""Property: a random corpus (multi-arch indexes, Docker manifest lists, referrers) synced
registry -> OCI layout -> registry by the one engine arrives bit for bit, the layout passes
its checks on the way, and a second import transfers nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.endpoints import SourceEndpoint, TargetEndpoint
from ocync.engine.layoutendpoint import LayoutEndpoint
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus, RunReport
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.integration.layoutsupport import layout_problems
from tests.property.test_sync_property import TOKEN, corpus_specs


async def run(maps: list[MappingSpec], src: SourceEndpoint, dst: TargetEndpoint) -> RunReport:
    engine = SyncEngine(maps, {"src": src}, {"dst": dst}, TransferCache(),
                        EngineOptions(max_concurrent_transfers=4))
    return await engine.run()


def mappings(repos: list[str], to: dict[str, str]) -> list[MappingSpec]:
    return [MappingSpec(name=r, source="src", source_repo=r, targets=(TargetRepo("dst", to[r]),))
            for r in repos]


async def _roundtrip(spec: CorpusSpec, root: Path) -> None:
    corpus = build_corpus(spec)
    repos = sorted(corpus.repos)
    to = {r: f"mirror/{r.rsplit('/', 1)[1]}" for r in repos}
    controllers = ControllerRegistry()
    async with (
        serve_mock(MockOptions(profile="generic")) as origin,
        serve_mock(MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                               user_namespaces={"alice": ["mirror"]})) as mirror,
    ):
        await push_corpus(corpus, origin.url)
        async with RegistryClient(origin.url, ClientSettings(auth=AuthSettings(kind="anonymous")),
                                  controllers=controllers) as oc:
            layout = LayoutEndpoint("dst", root, writable=True)
            await layout.open()
            try:
                report = await run(mappings(repos, {r: r for r in repos}), ClientEndpoint("src", oc), layout)
            finally:
                await layout.aclose()
        assert report.count(ImageStatus.FAILED) == 0, report.describe()
        assert layout.request_counts() == {}
        assert layout_problems(root) == [], spec
        settings_ = ClientSettings(auth=AuthSettings(kind="basic", username="alice", password=TOKEN),
                                   profile="ghcr")
        async with RegistryClient(mirror.url, settings_, controllers=controllers) as mc:
            for attempt in range(2):
                source = LayoutEndpoint("src", root, writable=False)
                await source.open()
                report = await run(mappings(repos, to), source, ClientEndpoint("dst", mc))
                assert report.count(ImageStatus.FAILED) == 0, report.describe()
                if attempt == 1:
                    assert report.blobs_transferred == 0, spec
        assert await verify_corpus(corpus, mirror.url, username="alice", password=TOKEN,
                                   repo_map=to, check_blob_bytes=True) == [], spec


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=corpus_specs)
def test_registry_to_layout_to_registry_is_bit_for_bit(spec: CorpusSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_roundtrip, spec, Path(tmp) / "layout")
