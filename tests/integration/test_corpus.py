"""The corpus generator: a deterministic plan, pushed faithfully to docker-registry and the mock."""

from __future__ import annotations

import gzip
import itertools
import json

import httpx
import pytest

from stress.corpus import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    CorpusSpec,
    PushError,
    build_corpus,
    push_corpus,
    referrers_tag,
    sha256_digest,
    verify_corpus,
)

_ns = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_ns)}"


def test_plan_is_deterministic_and_seed_sensitive() -> None:
    spec = CorpusSpec(seed=7, repositories=2, tags_per_repo=2, referrers_per_image=2)
    assert build_corpus(spec).describe() == build_corpus(spec).describe()
    other = build_corpus(CorpusSpec(seed=8, repositories=2, tags_per_repo=2, referrers_per_image=2))
    assert set(other.blobs).isdisjoint(set(build_corpus(spec).blobs) - {sha256_digest(b"{}")})


def test_plan_shapes() -> None:
    spec = CorpusSpec(
        seed=1,
        repositories=3,
        tags_per_repo=3,
        platforms=("linux/amd64", "linux/arm64/v8", "linux/s390x"),
        single_platform_tags=1,
        layers_per_image=4,
        shared_base_layers=2,
        referrers_per_image=2,
        layer_size=(100, 300),
    )
    corpus = build_corpus(spec)
    assert len(corpus.images) == 9 and len(corpus.repos) == 3
    for image in corpus.images:
        top = corpus.manifests[image.digest]
        assert sha256_digest(top.data) == image.digest
        if image.tag == "v0.0":  # single_platform_tags=1: a plain manifest
            assert top.media_type == OCI_MANIFEST and image.manifests == (image.digest,)
        else:
            assert top.media_type == OCI_INDEX
            index = json.loads(top.data)
            assert [m["platform"]["architecture"] for m in index["manifests"]] == [
                "amd64",
                "arm64",
                "s390x",
            ]
            assert index["manifests"][1]["platform"]["variant"] == "v8"
            assert [m["digest"] for m in index["manifests"]] == list(image.manifests[:-1])
        for digest in image.referrers:
            referrer = json.loads(corpus.manifests[digest].data)
            assert referrer["subject"]["digest"] == image.digest
            assert referrer["artifactType"] in (
                "application/vnd.dev.cosign.artifact.sig.v1+json",
                "application/spdx+json",
            )
        for child in image.manifests:
            manifest = json.loads(corpus.manifests[child].data)
            if manifest["mediaType"] != OCI_MANIFEST:
                continue
            layers = manifest["layers"]
            assert len(layers) == 4
            config = json.loads(corpus.blobs[manifest["config"]["digest"]].data)
            for layer, diff_id in zip(layers, config["rootfs"]["diff_ids"], strict=True):
                data = corpus.blobs[layer["digest"]].data
                assert layer["size"] == len(data)
                assert sha256_digest(gzip.decompress(data)) == diff_id  # real gzip, honest diff_ids
                assert 100 <= len(gzip.decompress(data)) <= 300
    # Base layers: the first two layers of every amd64 image are the same two blobs.
    amd64_bases = set()
    for manifest in corpus.manifests.values():
        if manifest.platform == "linux/amd64":
            amd64_bases.add(
                tuple(json.loads(manifest.data)["layers"][i]["digest"] for i in range(2))
            )
    assert len(amd64_bases) == 1
    # Other layers are unique to their image.
    unique_layers = [
        layer["digest"]
        for m in corpus.manifests.values()
        if m.platform is not None
        for layer in json.loads(m.data)["layers"][2:]
    ]
    assert len(unique_layers) == len(set(unique_layers))
    assert corpus.summary()["referrers"] == 18


def test_docker_format_uses_docker_media_types() -> None:
    corpus = build_corpus(
        CorpusSpec(seed=2, repositories=1, tags_per_repo=1, index_format="docker")
    )
    image = corpus.images[0]
    assert corpus.manifests[image.digest].media_type == DOCKER_LIST
    assert all(corpus.manifests[d].media_type == DOCKER_MANIFEST for d in image.manifests[:-1])


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"repositories": 0}, id="no-repos"),
        pytest.param({"platforms": ()}, id="no-platforms"),
        pytest.param({"shared_base_layers": 5, "layers_per_image": 2}, id="too-many-shared"),
        pytest.param({"layer_size": (10, 5)}, id="bad-size-range"),
        pytest.param({"index_format": "zip"}, id="bad-format"),
    ],
)
def test_spec_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CorpusSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.real_registry
@pytest.mark.parametrize("index_format", ["oci", "docker"])
async def test_seed_distribution(distribution_session, index_format: str) -> None:
    spec = CorpusSpec(
        seed=11,
        namespace=unique("corpus-dist"),
        repositories=3,
        tags_per_repo=2,
        index_format=index_format,  # type: ignore[arg-type]
        single_platform_tags=1,
        referrers_per_image=2,
    )
    corpus = build_corpus(spec)
    stats = await push_corpus(corpus, distribution_session.url)
    assert stats.blobs_mounted > 0  # shared base layers were mounted across repositories
    assert stats.referrers_api is False  # distribution 2.8 has no referrers API
    assert stats.fallback_tags == corpus.summary()["referrers"]
    assert await verify_corpus(corpus, distribution_session.url, check_blob_bytes=True) == []
    async with httpx.AsyncClient() as client:
        for repo, tags in corpus.repos.items():
            listed = (await client.get(f"{distribution_session.url}/v2/{repo}/tags/list")).json()[
                "tags"
            ]
            expected = set(tags) | {referrers_tag(d) for d in corpus.referrers(repo)}
            assert set(listed) == expected
    # A second push finds everything in place and uploads nothing.
    again = await push_corpus(corpus, distribution_session.url)
    assert again.blobs_uploaded == 0 and again.bytes_uploaded == 0


@pytest.mark.real_registry
async def test_verify_reports_missing_content(distribution_session) -> None:
    corpus = build_corpus(
        CorpusSpec(seed=12, namespace=unique("corpus-missing"), repositories=1, tags_per_repo=1)
    )
    problems = await verify_corpus(corpus, distribution_session.url)
    assert len(problems) == 1 and "GET manifest -> 404" in problems[0]
    await push_corpus(corpus, distribution_session.url)
    assert await verify_corpus(corpus, distribution_session.url) == []
    # Copying to another name is checked through repo_map.
    renamed = {corpus.images[0].repo: "elsewhere/none"}
    assert await verify_corpus(corpus, distribution_session.url, repo_map=renamed) != []


async def test_seed_mock_generic_uses_referrers_api() -> None:
    from mockregistry import MockOptions, serve_mock

    spec = CorpusSpec(
        seed=21, namespace="gen", repositories=2, tags_per_repo=2, referrers_per_image=2
    )
    corpus = build_corpus(spec)
    async with serve_mock(MockOptions(profile="generic", seed=1)) as mock:
        stats = await push_corpus(corpus, mock.url)
        assert stats.referrers_api is True and stats.fallback_tags == 0
        assert await verify_corpus(corpus, mock.url, check_blob_bytes=True) == []
        mock_stats = mock.stats()
        assert mock_stats["blobs"] == len(corpus.blobs)
        assert mock_stats["blob_bytes"] == corpus.blob_bytes
        async with httpx.AsyncClient() as client:
            for repo in corpus.repos:
                for subject, referrers in corpus.referrers(repo).items():
                    index = (await client.get(f"{mock.url}/v2/{repo}/referrers/{subject}")).json()
                    assert sorted(m["digest"] for m in index["manifests"]) == sorted(referrers)
                    signatures = await client.get(
                        f"{mock.url}/v2/{repo}/referrers/{subject}",
                        params={"artifactType": "application/spdx+json"},
                    )
                    assert {m["artifactType"] for m in signatures.json()["manifests"]} == {
                        "application/spdx+json"
                    }


async def test_seed_mock_ghcr_with_token_auth() -> None:
    from mockregistry import MockOptions, serve_mock

    spec = CorpusSpec(
        seed=22,
        namespace="bob",
        repositories=3,
        tags_per_repo=2,
        referrers_per_image=1,
        index_format="docker",
    )
    corpus = build_corpus(spec)
    options = MockOptions(profile="ghcr", auth="token", users={"bob": "pat-bob"}, seed=2)
    async with serve_mock(options) as mock:
        # Anonymous pushes are refused with one clear line naming the request.
        with pytest.raises(PushError, match="401|403"):
            await push_corpus(corpus, mock.url)
        stats = await push_corpus(corpus, mock.url, username="bob", password="pat-bob")
        assert stats.referrers_api is False  # GHCR: no referrers API, the tag fallback is used
        assert stats.fallback_tags == corpus.summary()["referrers"]
        assert stats.blobs_mounted > 0  # same namespace: GHCR mounts shared base layers
        assert (
            await verify_corpus(
                corpus, mock.url, username="bob", password="pat-bob", check_blob_bytes=True
            )
            == []
        )
        mock_stats = mock.stats()
        assert mock_stats["auth_leaks"] == 0
        assert mock_stats["by_kind"]["storage_get"] > 0  # blob GETs went through the redirect
        assert mock_stats["throttled"] == 0


async def test_push_waits_out_ghcr_throttling() -> None:
    from mockregistry import MockOptions, serve_mock

    corpus = build_corpus(CorpusSpec(seed=23, namespace="carol", repositories=2, tags_per_repo=2))
    options = MockOptions(
        profile="ghcr", auth="token", users={"carol": "pat-c"}, rate_limit="40/1s", seed=3
    )
    async with serve_mock(options) as mock:
        stats = await push_corpus(corpus, mock.url, username="carol", password="pat-c")
        assert stats.throttled > 0  # the cap was hit, and every 429 was waited out and retried
        assert mock.stats()["throttled"] == stats.throttled
        assert await verify_corpus(corpus, mock.url, username="carol", password="pat-c") == []
