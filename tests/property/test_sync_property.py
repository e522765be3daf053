"""Property: random corpora and random filters, synced from a source mock to a ghcr-profile
target mock (token auth, small rate cap, blob redirects), end in exactly the expected state.

Expected tags are computed here independently of the engine (fnmatch over the corpus tags,
JSON-level trimming of indexes), then compared with the target store: manifests bit-for-bit
(or the trimmed index, compared as JSON), every referenced blob and child present, no source
blob fetched twice, zero 429s, and a second run that transfers nothing.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.clientadapter import ClientEndpoint
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.report import ImageStatus, RunReport
from ocync.oci.platform import Platform
from ocync.oci.tagfilter import TagFilter
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import CorpusSpec, build_corpus, push_corpus, sha256_digest

TOKEN = "pat-alice"
RATE = "300/3s"


def dangling(store: Any) -> list[str]:
    """Tags whose manifest (or a child, or a blob of either) is missing: must be empty."""
    problems = []
    for name in store.repository_names():
        repo = store.repos[name]
        for tag, digest in repo.tags.items():
            stack = [digest]
            while stack:
                d = stack.pop()
                if d not in repo.manifests:
                    problems.append(f"{name}:{tag}: manifest {d[:19]} missing")
                    continue
                doc = json.loads(store.read_content(d))
                for child in doc.get("manifests", []):
                    stack.append(child["digest"])
                for blob in [doc.get("config")] + doc.get("layers", []):
                    if blob and blob["digest"] not in repo.blobs:
                        problems.append(f"{name}:{tag}: blob {blob['digest'][:19]} missing")
    return problems


async def sync_once(src_url: str, dst_url: str, maps: list[MappingSpec], cache: TransferCache) -> RunReport:
    controllers = ControllerRegistry()
    async with (
        RegistryClient(
            src_url, ClientSettings(auth=AuthSettings(kind="anonymous"), profile="generic"),
            controllers=controllers,
        ) as sc,
        RegistryClient(
            dst_url,
            ClientSettings(auth=AuthSettings(kind="basic", username="alice", password=TOKEN),
                           profile="ghcr", rate_limit=RATE),
            controllers=controllers,
        ) as dc,
    ):
        src, dst = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
        await src.prepare()
        await dst.prepare()
        engine = SyncEngine(maps, {"src": src}, {"dst": dst}, cache, EngineOptions(max_concurrent_transfers=4))
        return await engine.run()


corpus_specs = st.builds(
    CorpusSpec,
    seed=st.integers(0, 10_000),
    repositories=st.integers(1, 3),
    tags_per_repo=st.integers(1, 3),
    platforms=st.sampled_from([("linux/amd64",), ("linux/amd64", "linux/arm64")]),
    index_format=st.sampled_from(["oci", "docker"]),
    layers_per_image=st.just(2),
    layer_size=st.just((256, 2048)),
    shared_base_layers=st.integers(0, 2),
    referrers_per_image=st.integers(0, 1),
)
filters = st.fixed_dictionaries(
    {
        "glob": st.sampled_from([("*",), ("v0.*",), ("v1.*", "v2.*")]),
        "exclude": st.sampled_from([(), ("v1.0",)]),
        "platforms": st.sampled_from([(), ("linux/arm64",)]),
    }
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=corpus_specs, flt=filters)
def test_random_corpus_syncs_exactly(spec: CorpusSpec, flt: dict[str, Any]) -> None:
    trio.run(_check, spec, flt)


async def _check(spec: CorpusSpec, flt: dict[str, Any]) -> None:
    corpus = build_corpus(spec)
    platforms = tuple(Platform.parse(p) for p in flt["platforms"])
    async with (
        serve_mock(MockOptions(profile="generic", seed=spec.seed)) as src,
        serve_mock(
            MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                        user_namespaces={"alice": ["mirror"]}, rate_limit=RATE, seed=spec.seed)
        ) as dst,
    ):
        await push_corpus(corpus, src.url)
        src.reset_stats()
        repos = sorted(corpus.repos)
        maps = [
            MappingSpec(
                name=r, source="src", source_repo=r,
                targets=(TargetRepo("dst", f"mirror/{r.split('/', 1)[1]}"),),
                tag_filter=TagFilter(glob=flt["glob"], exclude=flt["exclude"]),
                platforms=platforms,
            )
            for r in repos
        ]
        cache = TransferCache()
        report = await sync_once(src.url, dst.url, maps, cache)
        seed_note = f"corpus seed {spec.seed}, filter {flt}"
        assert report.count(ImageStatus.FAILED) == 0, report.render_text() + seed_note
        store = dst.store
        for image in corpus.images:
            target_repo = f"mirror/{image.repo.split('/', 1)[1]}"
            wanted = any(fnmatch.fnmatchcase(image.tag, g) for g in flt["glob"]) and not any(
                fnmatch.fnmatchcase(image.tag, x) for x in flt["exclude"]
            )
            repo = store.repos.get(target_repo)
            got = None if repo is None else repo.tags.get(image.tag)
            if not wanted:
                assert got is None, f"{target_repo}:{image.tag} should not be there ({seed_note})"
                continue
            assert got is not None, f"{target_repo}:{image.tag} missing ({seed_note})"
            source_bytes = corpus.manifests[image.digest].data
            target_bytes = store.read_content(got)
            assert sha256_digest(target_bytes) == got
            top = json.loads(source_bytes)
            if "manifests" in top and platforms:
                kept = [m for m in top["manifests"] if m["platform"]["architecture"] == "arm64"]
                assert json.loads(target_bytes) == {**top, "manifests": kept}
            else:
                assert target_bytes == source_bytes, seed_note
                for ref in image.referrers:  # referrers follow an untouched subject
                    assert ref in repo.manifests and store.read_content(ref) == corpus.manifests[ref].data
                if image.referrers:  # ghcr: no referrers API -> the tag-schema fallback
                    assert "sha256-" + image.digest[7:] in repo.tags
        assert dangling(store) == [], seed_note
        # every unique blob the target holds was fetched from the source exactly once
        held = {b for name in store.repository_names() for b in store.repos[name].blobs}
        assert src.stats()["by_kind"]["blob_get"] == len(held), seed_note
        assert dst.stats()["throttled"] == 0, seed_note
        # second run: nothing moves
        again = await sync_once(src.url, dst.url, maps, cache)
        assert again.blobs_transferred == 0 and again.count(ImageStatus.SYNCED) == 0, again.render_text()
