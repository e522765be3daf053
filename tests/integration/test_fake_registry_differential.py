"""The pipeline tests' FakeRegistry (tests/unit/test_engine_pipeline.py) against the real thing:
the same corpus synced cold then warm by the same engine, once between two FakeRegistries and
once between two mock registries over real sockets (generic profile: honest self-mount probes,
the referrers API). Both must end with the same tags at the target and the target must have
been asked the same things, kind by kind, so the fake's answers keep standing for a registry's.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import trio

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageStatus
from ocync.oci import mediatypes as mt
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from tests.unit.test_engine_pipeline import BASE, FakeRegistry, image, mapping, multiarch, signature

# The fake speaks no HTTP: what only the wire has (the /v2/ ping, tokens) is left out.
WIRE_ONLY = frozenset({"ping", "token"})


def corpus() -> FakeRegistry:
    src = FakeRegistry("src")
    for repo in ("lib/a", "lib/b"):
        for tag in ("1", "2"):
            signature(src, repo, image(src, repo, tag, [BASE, f"{repo}-{tag}".encode()]))
    multiarch(src, "lib/c", "1", BASE)
    return src


async def seed(src: FakeRegistry, url: str) -> None:
    """Push the fake's bytes to a real registry: blobs, then manifests children first."""
    async with httpx.AsyncClient(base_url=url) as http:
        for repo, digests in src.links.items():
            for digest in sorted(digests):
                start = await http.post(f"/v2/{repo}/blobs/uploads/")
                assert start.status_code == 202, start.text
                put = await http.put(start.headers["location"], params={"digest": digest},
                                     content=src.blobs[digest])
                assert put.status_code == 201, put.text
        for repo, manifests in src.manifests.items():
            by_digest = sorted(manifests.items(), key=lambda kv: kv[1][1] == mt.OCI_INDEX)
            tags = {d: t for t, d in src.tags.get(repo, {}).items()}
            for digest, (raw, media_type) in by_digest:
                put = await http.put(f"/v2/{repo}/manifests/{tags.get(digest, digest)}", content=raw,
                                     headers={"Content-Type": media_type})
                assert put.status_code == 201, put.text


def wire_counts(counts: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v and k not in WIRE_ONLY}


async def sync_twice(maps: list, src: object, dst: object) -> list[tuple[dict[str, int], dict[str, int]]]:
    """(statuses, target requests by kind) of a cold run, then of a warm one (same cache)."""
    cache = TransferCache()
    out = []
    for _ in range(2):
        before = dict(dst.request_counts())  # type: ignore[attr-defined]
        engine = SyncEngine(maps, {"src": src}, {"dst": dst}, cache, EngineOptions())  # type: ignore[dict-item]
        report = await engine.run()
        statuses = {s.value: report.count(s) for s in ImageStatus if report.count(s)}
        after = dst.request_counts()  # type: ignore[attr-defined]
        out.append((statuses, wire_counts({k: after[k] - before.get(k, 0) for k in after})))
    return out


async def test_fake_registry_answers_as_the_mock_does() -> None:
    maps = [mapping(f"m{r}", f"lib/{r}", [("dst", f"mirror/{r}")]) for r in "abc"]
    # a target whose referrers API the client has not probed (as ocync sees a registry target)
    fake_src, fake_dst = corpus(), FakeRegistry("dst", probe_ok=True, referrers=None)
    with trio.fail_after(120):
        fake_runs = await sync_twice(maps, fake_src, fake_dst)
        async with serve_mock(MockOptions(profile="generic")) as src_mock, \
                serve_mock(MockOptions(profile="generic")) as dst_mock:
            await seed(fake_src, src_mock.url)
            settings = ClientSettings(auth=AuthSettings(kind="anonymous"))
            async with RegistryClient(src_mock.url, settings) as src_client, \
                    RegistryClient(dst_mock.url, settings) as dst_client:
                src_ep, dst_ep = ClientEndpoint("src", src_client), ClientEndpoint("dst", dst_client)
                mock_runs = await sync_twice(maps, src_ep, dst_ep)
                mock_stats = dst_mock.stats()["by_kind"]
            async with httpx.AsyncClient(base_url=dst_mock.url) as http:
                for repo, tags in fake_dst.tags.items():
                    for tag, digest in tags.items():
                        head = await http.head(f"/v2/{repo}/manifests/{tag}",
                                               headers={"Accept": ", ".join(mt.MANIFEST_TYPES)})
                        assert head.headers.get("docker-content-digest") == digest, (repo, tag)
    # the cold run copies every tag, the warm one skips them all, in both worlds
    assert fake_runs[0][0] == mock_runs[0][0] == {"synced": 5}
    assert fake_runs[1][0] == mock_runs[1][0] == {"skipped": 5}
    # the target was asked the same things, kind by kind (cold, then warm)
    assert fake_runs[0][1] == mock_runs[0][1], f"{fake_runs[0][1]} {mock_runs[0][1]}"
    assert fake_runs[1][1] == mock_runs[1][1], (fake_runs[1][1], mock_runs[1][1])
    # and the client's own counts agree with what the mock registry counted
    assert wire_counts(mock_stats) == {
        k: fake_runs[0][1].get(k, 0) + fake_runs[1][1].get(k, 0)
        for k in set(fake_runs[0][1]) | set(fake_runs[1][1])
    }
