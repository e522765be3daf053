"""The client's side of Docker Hub's pull quota against the mock's ``dockerhub`` profile: the
figure is read from a HEAD (not a pull), kept per principal (the user when authenticated, the
address when anonymous), and a manifest GET the quota cannot cover is refused before it is sent."""

from __future__ import annotations

import random

import pytest

from mockregistry import MockOptions, serve_mock
from ocync.errors import PullQuotaExhausted
from ocync.registry.auth import AuthSettings
from ocync.registry.client import RegistryClient
from ocync.registry.settings import ClientSettings
from tests.integration.imageseed import make_image, push_image

USER, TOKEN = "alice", "alice-pat"


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "user"])
async def test_the_wire_refuses_a_pull_the_quota_cannot_cover(authenticated: bool) -> None:
    options = MockOptions(profile="dockerhub", pull_limit="4/1h", auth="token", users={USER: TOKEN},
                          public=["alice/*"])
    auth = AuthSettings(kind="basic", username=USER, password=TOKEN)
    async with serve_mock(options) as mock:
        async with RegistryClient(mock.url.removeprefix("http://"), ClientSettings(auth=auth)) as seeder:
            await push_image(seeder, "alice/app", make_image(random.Random(3), "1.0"))
        settings = ClientSettings(profile="dockerhub", min_remaining=1,
                                  auth=auth if authenticated else AuthSettings(kind="anonymous"))
        async with RegistryClient(mock.url.removeprefix("http://"), settings) as client:
            quota = client.pull_quota
            assert quota is not None and not quota.known
            assert await client.head_manifest("alice/app", "1.0") is not None
            assert quota.remaining == 4 and quota.available() == 3
            for _ in range(3):
                await client.get_manifest("alice/app", "1.0")
            with pytest.raises(PullQuotaExhausted, match="not sent: pull quota: 1 remaining, min_remaining 1"):
                await client.get_manifest("alice/app", "1.0")
            stats = quota.statistics()
        mock_stats = mock.statistics()
    principal = USER if authenticated else "127.0.0.1"
    assert stats.source == principal and stats.limit == 4 and stats.window == 3600.0
    assert stats.pulls_sent == 3 and stats.refused == 1 and stats.remaining == 1
    assert mock_stats["pulls"][principal]["pulls"] == 3 and mock_stats["throttled"] == 0
    assert mock_stats["by_kind"]["manifest_get"] == 3
