"""Token requests by the mocks' ``/_mock/stats``: one bearer token serves every repository of
a run when the registry grants multi-scope tokens (profile ``multi_scope_tokens``).

Before, a token was asked per repository (per scope set): a warm sync of N repositories from a
token-auth source paid N tokens for its tag lists and HEADs. Now the run announces its
repositories up front and the first token request carries all their scopes (distribution
token.md: ``scope`` "specified multiple times"), so the whole run asks one. Counts are pinned as
literals (see test_wire_counts.py); kinds with a zero count are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus
from tests.integration.test_wire_counts import (
    TOKEN,
    USER,
    Counts,
    Mocks,
    explain,
    hermetic_env,
    reset,
    run_ocync,
    wire_counts,
)

SPEC = CorpusSpec(seed=44, repositories=4, tags_per_repo=2, shared_base_layers=1, layers_per_image=1)

# Warm, source a ghcr-profile mock with token auth, 4 repositories x 2 tags: one source HEAD
# per tag, a tag list per repository, one ping, and ONE token for all 4 repositories (4
# before: one per repository). The target is not asked beyond its ping (tag stamps).
EXPECTED_WARM: Counts = {
    "src": {"manifest_head": 8, "ping": 1, "tags_list": 4, "token": 1},
    "dst": {"ping": 1},
}
# Cold: the same single source token covers the 4 repositories' listings and GETs.
EXPECTED_COLD_TOKENS = {"src": 1, "dst": 0}


def write_config(path: Path, src_host: str, dst_host: str, repos: list[str], cache: Path) -> None:
    lines = [
        "global:", f"  cache_dir: {cache}", "registries:",
        "  src:", f"    url: {src_host}", "    profile: ghcr",
        f"    credentials: {{username: {USER}, password: {TOKEN}}}",
        "  dst:", f"    url: {dst_host}", "    auth_type: anonymous",
        "defaults:", "  source: src", "  targets: dst", "  artifacts: {refresh: on_change}", "mappings:",
    ]
    lines += [f"  - {{from: {r}, to: mirror/{r.rsplit('/', 1)[-1]}}}" for r in repos]
    path.write_text("\n".join(lines) + "\n")


async def mock_token_grants(url: str, repos: list[str]) -> list[int]:
    """Ask one token with a ``scope`` per repository, then use it on each: the statuses."""
    async with httpx.AsyncClient(timeout=30) as http:
        challenge = await http.get(f"{url}/v2/")
        assert challenge.status_code == 401, challenge
        params = [("service", "mock")] + [("scope", f"repository:{r}:pull") for r in repos]
        got = await http.get(f"{url}/token", params=params, auth=(USER, TOKEN))
        got.raise_for_status()
        token = got.json()["token"]
        statuses = []
        for repo in repos:
            listed = await http.get(f"{url}/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {token}"})
            statuses.append(listed.status_code)
    return statuses


@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_the_mock_grants_multi_scope_tokens(profile: str) -> None:
    corpus = build_corpus(SPEC)
    repos = sorted(corpus.repos)
    options = MockOptions(profile=profile, auth="token", users={USER: TOKEN}, user_namespaces={USER: ["*"]})
    async with serve_mock(options) as src:
        await push_corpus(corpus, src.url, username=USER, password=TOKEN)
        assert await mock_token_grants(src.url, repos) == [200] * len(repos)


async def test_a_warm_sync_of_several_repositories_asks_one_token(tmp_path: Path) -> None:
    corpus = build_corpus(SPEC)
    repos = sorted(corpus.repos)
    assert len(repos) == 4
    env = hermetic_env(tmp_path)
    config = tmp_path / "ocync.yaml"
    src_options = MockOptions(profile="ghcr", auth="token", users={USER: TOKEN}, user_namespaces={USER: ["*"]},
                              seed=1)
    async with serve_mock(src_options) as src, serve_mock(MockOptions(profile="generic", seed=2)) as dst:
        m = Mocks(src, dst, "generic")
        await push_corpus(corpus, src.url, username=USER, password=TOKEN)
        write_config(config, src.host, dst.host, repos, tmp_path / "cache")
        reset(m)
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        cold = await wire_counts(m)
        reset(m)
        warm_out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        warm = await wire_counts(m)
    assert json.loads(out)["summary"]["images_synced"] == len(corpus.images)
    assert json.loads(warm_out)["summary"]["images_skipped"] == len(corpus.images)
    assert {side: cold[side].get("token", 0) for side in cold} == EXPECTED_COLD_TOKENS, cold
    assert warm == EXPECTED_WARM, explain("warm, token-auth source", warm, EXPECTED_WARM)
