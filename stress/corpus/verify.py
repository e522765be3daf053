"""Checking a registry against a planned corpus: every tag at its planned digest, every manifest
byte-identical (children and referrers included), every blob present with its size (or bytes).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from stress.corpus.client import make_client, send_with_retry
from stress.corpus.plan import MANIFEST_ACCEPT, Corpus, Image, sha256_digest


async def verify_corpus(
    corpus: Corpus,
    base_url: str,
    *,
    client: httpx.AsyncClient | None = None,
    username: str | None = None,
    password: str | None = None,
    repo_map: Mapping[str, str] | None = None,
    check_blob_bytes: bool = False,
) -> list[str]:
    """Compare a registry's content with the plan; returns the problems found (empty = faithful).

    Every tag must resolve to the planned digest with byte-identical manifests (children
    included), every blob must exist with its size (and bytes, when asked). `repo_map` renames
    source repositories to where a copy put them.
    """
    own = client is None
    http = client or make_client(username, password)
    base = httpx.URL(base_url.rstrip("/") + "/")
    problems: list[str] = []
    try:
        for image in corpus.images:
            repo = (repo_map or {}).get(image.repo, image.repo)
            problems += await _verify_image(http, base, corpus, image, repo, check_blob_bytes)
    finally:
        if own:
            await http.aclose()
    return problems


async def _verify_image(
    http: httpx.AsyncClient,
    base: httpx.URL,
    corpus: Corpus,
    image: Image,
    repo: str,
    check_blob_bytes: bool,
) -> list[str]:
    problems: list[str] = []
    tagged = await send_with_retry(
        http,
        "GET",
        base.join(f"v2/{repo}/manifests/{image.tag}"),
        headers={"Accept": MANIFEST_ACCEPT},
    )
    if tagged.status_code != 200:
        return [f"{repo}:{image.tag}: GET manifest -> {tagged.status_code}"]
    if sha256_digest(tagged.content) != image.digest:
        problems.append(
            f"{repo}:{image.tag}: digest {sha256_digest(tagged.content)} != {image.digest}"
        )
    for digest in image.manifests[:-1] + image.referrers:
        got = await send_with_retry(
            http,
            "GET",
            base.join(f"v2/{repo}/manifests/{digest}"),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if got.status_code != 200 or got.content != corpus.manifests[digest].data:
            problems.append(f"{repo}@{digest}: manifest -> {got.status_code} or bytes differ")
    for digest in image.blobs:
        problem = await _verify_blob(http, base, corpus, repo, digest, check_blob_bytes)
        if problem is not None:
            problems.append(problem)
    return problems


async def _verify_blob(
    http: httpx.AsyncClient,
    base: httpx.URL,
    corpus: Corpus,
    repo: str,
    digest: str,
    check_bytes: bool,
) -> str | None:
    blob = corpus.blobs[digest]
    url = base.join(f"v2/{repo}/blobs/{digest}")
    if check_bytes:
        got = await send_with_retry(http, "GET", url)
        if got.status_code != 200 or got.content != blob.data:
            return f"{repo}@{digest}: blob GET -> {got.status_code} or bytes differ"
        return None
    got = await send_with_retry(http, "HEAD", url)
    size = got.headers.get("content-length")
    if got.status_code != 200 or size != str(blob.size):
        return f"{repo}@{digest}: blob HEAD -> {got.status_code} size {size}"
    return None
