"""A cap learned from 429s in one watch cycle paces the next: the controllers live across
cycles (one trio run), so cycle 2 against the same capped registry gets no 429 at all."""

from __future__ import annotations

from pathlib import Path

import trio

from mockregistry import MockOptions, serve_mock
from ocync.config import load_config_file
from ocync.engine.report import RunReport
from ocync.service.loop import WatchOptions, WatchService
from ocync.service.schedule import IntervalSchedule
from stress.corpus import CorpusSpec, build_corpus, push_corpus

CAP = "20/1s"


async def test_cycle_two_against_a_capped_source_gets_no_429(tmp_path: Path) -> None:
    corpus = build_corpus(CorpusSpec(seed=31, repositories=1, tags_per_repo=40, platforms=("linux/amd64",),
                                     layers_per_image=1))
    storage = tmp_path / "src-store"
    async with serve_mock(MockOptions(storage_dir=storage)) as fast:
        await push_corpus(corpus, fast.url)
    async with (
        serve_mock(MockOptions(storage_dir=storage, rate_limit=CAP, seed=3)) as src,
        serve_mock(MockOptions()) as dst,
    ):
        cfg = tmp_path / "ocync.yaml"
        (repo,) = sorted(corpus.repos)
        # no rate_limit configured for src: the cap is learned from its 429s
        cfg.write_text(
            f"global: {{cache_dir: '{tmp_path / 'cache'}'}}\n"
            f"registries:\n  src: {{url: '{src.host}'}}\n  dst: {{url: '{dst.host}'}}\n"
            f"defaults: {{source: src, targets: dst}}\nmappings:\n  - {{from: {repo}, to: mirror/{repo}}}\n"
        )
        reports: list[RunReport] = []
        mock_429s: list[int] = []

        def on_report(report: RunReport) -> None:
            reports.append(report)
            mock_429s.append(int(src.stats()["throttled"]))
            src.reset_stats()

        options = WatchOptions(config_path=str(cfg), schedule=IntervalSchedule(0.01), max_runs=2)
        svc = WatchService(options, load_config_file(str(cfg)).config, on_report=on_report)
        with trio.fail_after(120):
            code = await svc.run()
    first, second = reports
    assert code == 0, second.describe()
    assert mock_429s[0] > 0 and first.throttled > 0, "cycle 1 must meet the cap to learn it"
    learned = [p for p in second.principals if p["learned_cap"]]
    assert learned, second.principals
    # cycle 2 asks the source about every tag again: more requests than one window allows
    src_requests = sum(second.controllers["src"]["client"]["by_kind"].values())
    assert src_requests > 20, src_requests
    assert mock_429s[1] == 0 and second.throttled == 0, (mock_429s, learned)
