"""A real client we did not write: Debian's skopeo copies multi-arch images through the mock.

The image is seeded into docker-registry with the corpus generator, copied into the mock
(generic profile; ghcr profile with token auth and blob redirects to the storage host) and back
out to a second docker-registry with `skopeo copy --all`. The raw manifest bytes must hash to the same
digest at every hop, and the storage host must never see an Authorization header.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus

pytestmark = [pytest.mark.real_registry, pytest.mark.slow]

USER, PAT = "alice", "pat-alice-0123456789"
_ns = itertools.count()


async def skopeo_run(skopeo: str, *args: str) -> bytes:
    cmd = [skopeo, "--insecure-policy", *args]
    result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} -> exit {result.returncode}: {result.stderr.decode()[-800:]}"
        )
    return result.stdout


def creds_args(flag: str, creds: str | None) -> list[str]:
    return [flag, creds] if creds else []


async def copy(
    skopeo: str, src: str, dst: str, *, src_creds: str | None = None, dst_creds: str | None = None
) -> None:
    await skopeo_run(
        skopeo,
        "copy",
        "--all",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        *creds_args("--src-creds", src_creds),
        *creds_args("--dest-creds", dst_creds),
        f"docker://{src}",
        f"docker://{dst}",
    )


async def raw_digest(skopeo: str, ref: str, creds: str | None = None) -> str:
    raw = await skopeo_run(
        skopeo,
        "inspect",
        "--raw",
        "--tls-verify=false",
        *creds_args("--creds", creds),
        f"docker://{ref}",
    )
    return "sha256:" + hashlib.sha256(raw).hexdigest()


async def check_leak_detector(
    url: str, repo: str, digest: str, stats: Callable[[], dict[str, Any]]
) -> None:
    """Negative control: a client that forwards its credential to the storage host is caught."""
    auth = {"Authorization": f"Bearer {PAT}"}  # GHCR also takes the PAT itself as a bearer token
    async with httpx.AsyncClient(follow_redirects=False) as client:
        redirect = await client.get(f"{url}/v2/{repo}/blobs/{digest}", headers=auth)
        assert redirect.status_code == 307, redirect.text
        leaked = await client.get(redirect.headers["location"], headers=auth)
        assert leaked.status_code == 200
    assert stats()["auth_leaks"] == 1


@pytest.mark.parametrize("index_format", ["oci", "docker"])
@pytest.mark.parametrize(
    "profile",
    [
        pytest.param("generic", id="generic"),
        pytest.param("ghcr", id="ghcr-token-redirects"),
    ],
)
async def test_skopeo_round_trip_through_mock(
    distribution_session, distribution, skopeo: str, profile: str, index_format: str
) -> None:
    # Out to a second, fresh registry: skopeo's blob-info cache would otherwise mount the blobs
    # from the source repository instead of pulling them through the mock.
    n = next(_ns)
    spec = CorpusSpec(
        seed=40 + n,
        namespace=f"skopeo{n}",
        repositories=1,
        tags_per_repo=1,
        platforms=("linux/amd64", "linux/arm64/v8", "linux/ppc64le"),
        index_format=index_format,  # type: ignore[arg-type]
        layers_per_image=3,
        layer_size=(2_000, 200_000),
    )
    corpus = build_corpus(spec)
    await push_corpus(corpus, distribution_session.url)
    image = corpus.images[0]
    source = f"{distribution_session.host}/{image.repo}:{image.tag}"
    assert await raw_digest(skopeo, source) == image.digest

    ghcr = profile == "ghcr"
    options = (
        MockOptions(profile="ghcr", auth="token", users={USER: PAT}, blob_redirect=True, seed=n)
        if ghcr
        else MockOptions(profile="generic", seed=n)
    )
    creds = f"{USER}:{PAT}" if ghcr else None
    async with serve_mock(options) as mock:
        mirror = f"{mock.host}/{USER}/mirror-{index_format}:{image.tag}"
        await copy(skopeo, source, mirror, dst_creds=creds)
        assert await raw_digest(skopeo, mirror, creds) == image.digest

        back = f"{distribution.host}/back{n}/{profile}:{image.tag}"
        await copy(skopeo, mirror, back, src_creds=creds)
        assert await raw_digest(skopeo, back) == image.digest

        stats = mock.stats()
        if ghcr:
            # skopeo pulled every blob through the storage host and never handed it a credential.
            assert stats["by_kind"]["storage_get"] >= len(image.blobs), stats["by_kind"]
            assert stats["by_kind"]["token"] > 0
            assert mock.storage_url is not None
        else:
            assert stats["by_kind"]["blob_get"] >= len(image.blobs), stats["by_kind"]
        assert stats["auth_leaks"] == 0
        assert stats["by_kind"]["manifest_put"] >= len(image.manifests)

        # Every manifest and blob is byte-identical in the mock and back in docker-registry.
        in_mock = await verify_corpus(
            corpus,
            mock.url,
            username=USER if ghcr else None,
            password=PAT if ghcr else None,
            repo_map={image.repo: f"{USER}/mirror-{index_format}"},
            check_blob_bytes=True,
        )
        assert in_mock == []
        assert mock.stats()["auth_leaks"] == 0
        if ghcr:
            await check_leak_detector(
                mock.url, f"{USER}/mirror-{index_format}", image.blobs[0], mock.stats
            )
    back_again = await verify_corpus(
        corpus, distribution.url, repo_map={image.repo: f"back{n}/{profile}"}, check_blob_bytes=True
    )
    assert back_again == []
