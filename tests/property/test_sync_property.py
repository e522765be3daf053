"""Property: random corpora and random filters, synced from a source mock to a ghcr-profile
target mock (token auth, small rate cap, blob redirects), end in exactly the expected state.

Expected tags are computed here independently of the engine (fnmatch over the corpus tags,
JSON-level trimming of indexes), then compared with the target store: manifests bit-for-bit
(or the trimmed index, compared as JSON), every referenced blob and child present, no source
blob fetched twice, zero 429s, and a second run that transfers nothing.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
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
    trio.run(_check, spec, flt, None)


_namespaces = itertools.count()


@pytest.mark.real_registry
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=corpus_specs, flt=filters)
def test_random_corpus_from_distribution(
    distribution_session: Any, spec: CorpusSpec, flt: dict[str, Any]
) -> None:
    """The same property with Debian's docker-registry as the source (a fresh namespace per
    example in one session registry)."""
    spec = dataclasses.replace(spec, namespace=f"prop{next(_namespaces)}")
    trio.run(_check, spec, flt, distribution_session.url)


async def _check(spec: CorpusSpec, flt: dict[str, Any], source_url: str | None) -> None:
    corpus = build_corpus(spec)
    platforms = tuple(Platform.parse(p) for p in flt["platforms"])
    async with (
        serve_mock(MockOptions(profile="generic", seed=spec.seed)) as mock_src,
        serve_mock(
            MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                        user_namespaces={"alice": ["mirror"]}, rate_limit=RATE, seed=spec.seed)
        ) as dst,
    ):
        src_url = source_url or mock_src.url
        await push_corpus(corpus, src_url)
        mock_src.reset_stats()
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
        report = await sync_once(src_url, dst.url, maps, cache)
        seed_note = f"corpus seed {spec.seed}, filter {flt}"
        assert report.count(ImageStatus.FAILED) == 0, report.describe() + seed_note
        store = dst.store
        expected_tags: dict[str, set[str]] = {}
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
            expected_tags.setdefault(target_repo, set()).add(image.tag)
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
                    expected_tags[target_repo].add("sha256-" + image.digest[7:])
        # exactly the expected tags, nothing more, in exactly the expected repositories
        actual_tags = {n: set(store.repos[n].tags) for n in store.repository_names() if store.repos[n].tags}
        assert actual_tags == expected_tags, seed_note
        assert dangling(store) == [], seed_note
        # every unique blob the target holds was fetched from the source exactly once
        held = {b for name in store.repository_names() for b in store.repos[name].blobs}
        if source_url is None:  # the mock is the witness
            assert mock_src.stats()["by_kind"]["blob_get"] == len(held), seed_note
        else:  # docker-registry keeps no counters: the client's own count
            assert report.requests_by_kind.get("blob_get", 0) == len(held), seed_note
        assert dst.stats()["throttled"] == 0, seed_note
        # second run: nothing moves
        again = await sync_once(src_url, dst.url, maps, cache)
        assert again.blobs_transferred == 0 and again.count(ImageStatus.SYNCED) == 0, again.describe()


@pytest.mark.real_registry
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=corpus_specs, flt=filters)
def test_random_corpus_into_distribution(
    distribution_session: Any, spec: CorpusSpec, flt: dict[str, Any]
) -> None:
    """The same property with Debian's docker-registry as the target, checked over HTTP."""
    n = next(_namespaces)
    trio.run(_check_distribution_target, dataclasses.replace(spec, namespace=f"src{n}"), flt,
             distribution_session.url, f"dst{n}")


async def _check_distribution_target(spec: CorpusSpec, flt: dict[str, Any], url: str, ns: str) -> None:
    import httpx

    corpus = build_corpus(spec)
    platforms = tuple(Platform.parse(p) for p in flt["platforms"])
    note = f"corpus seed {spec.seed}, filter {flt}"
    async with serve_mock(MockOptions(profile="generic", seed=spec.seed)) as src:
        await push_corpus(corpus, src.url)
        src.reset_stats()
        maps = [
            MappingSpec(name=r, source="src", source_repo=r,
                        targets=(TargetRepo("dst", f"{ns}/{r.split('/', 1)[1]}"),),
                        tag_filter=TagFilter(glob=flt["glob"], exclude=flt["exclude"]),
                        platforms=platforms)
            for r in sorted(corpus.repos)
        ]
        controllers = ControllerRegistry()
        anon = ClientSettings(auth=AuthSettings(kind="anonymous"))
        cache = TransferCache()

        async def sync() -> RunReport:
            async with (
                RegistryClient(src.url, anon, controllers=controllers) as sc,
                RegistryClient(url, anon, controllers=controllers) as dc,
            ):
                s, d = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
                engine = SyncEngine(maps, {"src": s}, {"dst": d}, cache, EngineOptions(max_concurrent_transfers=4))
                return await engine.run()

        report = await sync()
        assert report.count(ImageStatus.FAILED) == 0, report.describe() + note
        needed: set[str] = set()
        accept = {"Accept": ", ".join(sorted({m.media_type for m in corpus.manifests.values()}))}
        async with httpx.AsyncClient(base_url=url) as http:
            for image in corpus.images:
                repo = f"{ns}/{image.repo.split('/', 1)[1]}"
                wanted = any(fnmatch.fnmatchcase(image.tag, g) for g in flt["glob"]) and not any(
                    fnmatch.fnmatchcase(image.tag, x) for x in flt["exclude"])
                got = await http.get(f"/v2/{repo}/manifests/{image.tag}", headers=accept)
                if not wanted:
                    assert got.status_code == 404, f"{repo}:{image.tag} should not be there ({note})"
                    continue
                assert got.status_code == 200, f"{repo}:{image.tag} missing ({note})"
                top = json.loads(corpus.manifests[image.digest].data)
                children = [c["digest"] for c in top.get("manifests", [])]
                if children and platforms:
                    kept = [m for m in top["manifests"] if m["platform"]["architecture"] == "arm64"]
                    assert json.loads(got.content) == {**top, "manifests": kept}, note
                    children = [m["digest"] for m in kept]
                    blobs = {b for c in children for b in corpus.manifests[c].blobs}
                else:
                    assert got.content == corpus.manifests[image.digest].data, note
                    blobs = set(image.blobs)
                    children += list(image.referrers)
                for c in children:
                    r = await http.get(f"/v2/{repo}/manifests/{c}", headers=accept)
                    assert r.status_code == 200 and r.content == corpus.manifests[c].data, note
                for b in blobs:
                    r = await http.head(f"/v2/{repo}/blobs/{b}")
                    assert r.status_code == 200, f"{repo} lacks {b[:19]} ({note})"
                needed |= blobs
        assert src.stats()["by_kind"]["blob_get"] == len(needed), note
        again = await sync()
        assert again.blobs_transferred == 0 and again.count(ImageStatus.SYNCED) == 0, again.describe()
