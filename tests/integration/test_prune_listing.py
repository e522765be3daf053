"""A source tag listing that fails prunes nothing: the engine over real sockets, with the
source mock's fault injection turned on after the first run (every request answers 5xx).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mockregistry import MockOptions, serve_mock
from mockregistry.quirks import FaultRates
from ocync.config.resolve import PrunePolicy
from ocync.engine.cache import TransferCache
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import RunReport
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient

sys.path.insert(0, str(Path(__file__).parent))
from test_prune import MIRROR, REPO, deletes, seed, target_tags, untag  # noqa: E402

MAPPING = MappingSpec(
    name="app", source="src", source_repo=REPO, targets=(TargetRepo("dst", MIRROR),),
    prune=PrunePolicy(enabled=True, max_fraction=1.0),
)


async def run(src_url: str, dst_url: str, cache: TransferCache, *, force: bool = False,
              before: object = None) -> RunReport:
    settings = ClientSettings(auth=AuthSettings(kind="anonymous"), attempts=2)
    controllers = ControllerRegistry()
    async with (
        RegistryClient(src_url, settings, controllers=controllers) as sc,
        RegistryClient(dst_url, settings, controllers=controllers) as dc,
    ):
        src, dst = ClientEndpoint("src", sc, seed=1), ClientEndpoint("dst", dc, seed=2)
        await src.prepare()
        await dst.prepare()
        if callable(before):
            before()
        engine = SyncEngine([MAPPING], {"src": src}, {"dst": dst}, cache,
                            EngineOptions(force_prune=force))
        return await engine.run()


async def test_a_failed_source_listing_prunes_nothing() -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1", "2"])
        cache = TransferCache()
        first = await run(src.url, dst.url, cache)
        assert first.exit_code() == 0, first.describe()
        assert cache.owned.owned_tags(dst.host, MIRROR, f"{src.host}/{REPO}").keys() == {"1", "2"}
        await untag(src.url, REPO, "2")  # would be pruned by a run that can list the source

        def break_source() -> None:
            src.registry.faults.rates = FaultRates(fault_rate=1.0)

        dst.reset_stats()
        report = await run(src.url, dst.url, cache, force=True, before=break_source)
        assert src.stats()["faults"], "the listing met injected faults"
        assert report.exit_code() == 2, report.describe()  # nothing but a failure: exit 2
        assert any("listing tags" in e for e in report.errors), report.errors
        assert any("nothing pruned: the source tags could not be listed" in w for w in report.warnings)
        assert report.pruned == [] and deletes(dst) == 0
        assert await target_tags(dst.url, MIRROR) == {"1", "2"}
        # the source answers again: the tag that vanished is pruned
        src.registry.faults.rates = FaultRates()
        again = await run(src.url, dst.url, cache)
        assert [p.tag for p in again.pruned if p.action == "deleted"] == ["2"] and deletes(dst) == 1
