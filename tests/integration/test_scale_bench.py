"""Smoke test of the scale benchmark (stress/scale.py) at 5 repositories: the seeded source
mirrors completely, and the warm run's requests are the literal per-tag and per-repository
counts the README's table quotes at 10,000. Counts only, never times."""

from __future__ import annotations

import json
from pathlib import Path

from stress import scale

REPOS = 5
TAGS = 2 * REPOS


def test_scale_benchmark_counts(tmp_path: Path) -> None:
    out = tmp_path / "scale"
    assert scale.main(["--sizes", str(REPOS), "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    (entry,) = doc["sizes"]
    assert (entry["repositories"], entry["tags"]) == (REPOS, TAGS)
    cold, warm = entry["cold"], entry["warm"]
    assert cold["exit_code"] == warm["exit_code"] == 0
    assert cold["images_failed"] == warm["images_failed"] == 0
    # cold: each image's manifest pushed once (single-platform images: one manifest each)
    assert cold["target_by_kind"]["manifest_put"] == TAGS
    # warm: per tag a source manifest HEAD (artifacts.refresh: cached, the default, lists no
    # referrers of tags the cache vouches for), per repository a tag list, one ping each;
    # nothing written and nothing asked at the target
    assert warm["source_by_kind"] == {"manifest_head": TAGS, "ping": 1, "tags_list": REPOS}
    assert warm["target_by_kind"] == {"ping": 1}
    assert warm["writes"] == 0
    assert entry["cache"]["tags"] == TAGS
    assert doc["synthetic_cache"]["tags"] == scale.CACHE_TAGS
    assert "| 5 | 10 | warm |" in out.with_suffix(".md").read_text()
