"""The catalog paged by the client against the mock over real sockets, for random repository
sets and page sizes: every repository is listed exactly once, in as many requests as pages
(ceil(count / page), at least one), and a pattern expands to exactly the pure matches."""

from __future__ import annotations

import hashlib
import json
import math

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from mockregistry import MockOptions, serve_mock
from mockregistry.store import ManifestRecord
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.namespaces import expand_spec
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.oci.repopattern import RepoPattern
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient

MEDIA = "application/vnd.oci.image.manifest.v1+json"
component = st.from_regex(r"[a-z][a-z0-9]{0,4}", fullmatch=True)
repository = st.lists(component, min_size=1, max_size=3).map("/".join)


async def _list(repos: list[str], page_size: int) -> tuple[list[str], int]:
    async with serve_mock(MockOptions(catalog_page_size=page_size, seed=1)) as mock:
        for repo in repos:
            body = json.dumps({"schemaVersion": 2, "mediaType": MEDIA, "repo": repo}).encode()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            mock.store.put_manifest(repo, ManifestRecord(digest, MEDIA, len(body)), body, "v1")
        settings_ = ClientSettings(auth=AuthSettings(kind="anonymous"))
        async with RegistryClient(mock.url, settings_) as client:
            endpoint = ClientEndpoint("src", client)
            found: list[str] = []
            cursor: str | None = None
            while True:
                page, cursor = await endpoint.catalog_page(cursor)
                found += page
                if cursor is None:
                    break
        return found, mock.stats()["by_kind"]["catalog"]


@settings(max_examples=25, deadline=None)
@given(
    repos=st.lists(repository, unique=True, max_size=40),
    page_size=st.integers(1, 12),
    prefix=component,
    deep=st.booleans(),
)
def test_every_page_is_followed_and_patterns_match_exactly(
    repos: list[str], page_size: int, prefix: str, deep: bool
) -> None:
    found, requests = trio.run(_list, repos, page_size)
    assert sorted(found) == sorted(repos)
    assert requests == max(1, math.ceil(len(repos) / page_size))
    pattern = RepoPattern.parse(f"{prefix}/{'**' if deep else '*'}")
    spec = MappingSpec("m", "src", str(pattern), (TargetRepo("dst", "mirror/*"),), source_pattern=pattern)
    expanded = {c.source_repo: c.targets[0].repo for r in found if (c := expand_spec(spec, r)) is not None}
    for repo in repos:
        rest = repo.removeprefix(prefix + "/")
        under = repo.startswith(prefix + "/") and (deep or "/" not in rest)
        assert (repo in expanded) == under, repo
        if under:
            assert expanded[repo] == "mirror/" + rest
