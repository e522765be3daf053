"""Many mappings, bounded work: discovery admits mappings (and a mapping's tags) as earlier ones
finish, so the run's live trio tasks stay bounded by the engine's concurrency options however
many mappings the config has. Counted by a trio instrument (tasks spawned minus exited), never
timed. The source is seeded the way stress/scale.py seeds 10,000 repositories (the mock's own
disk store, one persist per repository), which this also checks against the mock's API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import trio
import trio.abc

from mockregistry import MockOptions, serve_mock
from ocync.engine.cache import TransferCache
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.registryendpoint import ClientEndpoint
from ocync.engine.report import ImageResult, ImageStatus
from ocync.ratelimit.limiter import ControllerRegistry
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from stress.corpus import CorpusSpec, build_corpus, verify_corpus
from stress.scale import seed_store
from tests.integration.test_sync_mock import corpus_mappings

MAPPINGS = 120
DISCOVERY = 4  # EngineOptions.discovery_concurrency of the test
TRANSFERS = 2


class Unwalkable(list[ImageResult]):
    """The results list, refusing to be iterated (progress() may only take its length)."""

    def __iter__(self) -> Iterator[ImageResult]:
        raise AssertionError("progress() walked every result")


class LiveTasks(trio.abc.Instrument):
    """Tasks alive now, and the most alive at once."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live += 1
        self.peak = max(self.peak, self.live)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live -= 1


async def test_live_tasks_do_not_grow_with_the_mapping_count(tmp_path: Path) -> None:
    spec = CorpusSpec(seed=88, repositories=MAPPINGS, tags_per_repo=2, platforms=("linux/amd64",),
                      layers_per_image=1, layer_size=(64, 256), shared_base_layers=0)
    corpus = build_corpus(spec)
    seed_store(corpus, tmp_path / "store")
    repos = sorted(corpus.repos)
    src_opts = MockOptions(profile="generic", storage_dir=tmp_path / "store")
    async with serve_mock(src_opts) as src, serve_mock(MockOptions(profile="generic")) as dst:
        # the seeded store is what a push would have made: the corpus verifies at the source
        assert await verify_corpus(corpus, src.url) == []
        controllers = ControllerRegistry()
        anonymous = ClientSettings(auth=AuthSettings(kind="anonymous"), profile="generic")
        async with (
            RegistryClient(src.url, anonymous, controllers=controllers) as sc,
            RegistryClient(dst.url, anonymous, controllers=controllers) as dc,
        ):
            source, target = ClientEndpoint("src", sc), ClientEndpoint("dst", dc)
            await source.prepare()
            await target.prepare()
            options = EngineOptions(max_concurrent_transfers=TRANSFERS, discovery_concurrency=DISCOVERY)
            engine = SyncEngine(corpus_mappings(repos), {"src": source}, {"dst": target},
                                TransferCache(), options)
            tasks = LiveTasks()
            trio.lowlevel.add_instrument(tasks)
            try:
                report = await engine.run()
            finally:
                trio.lowlevel.remove_instrument(tasks)
    assert report.count(ImageStatus.SYNCED) == len(corpus.images), report.describe()
    # the live status reads progress() ~4 times a second: it must not walk every result
    assert engine.progress().bytes_transferred == report.bytes_transferred > 0
    report.results = Unwalkable(report.results)
    assert engine.progress().results == len(corpus.images)
    # Admitted at once: 2 x DISCOVERY mappings, each with at most DISCOVERY tag tasks, plus
    # TRANSFERS items and their per-target and per-blob tasks, plus the clients' own. A task
    # per mapping (as before) would be > MAPPINGS on its own.
    bound = 2 * DISCOVERY * (2 + DISCOVERY) + TRANSFERS * 8 + 20
    assert bound < MAPPINGS
    assert tasks.peak <= bound, f"{tasks.peak} tasks alive at once for {MAPPINGS} mappings"
