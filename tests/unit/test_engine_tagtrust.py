"""The transfer cache's tag stamps: when they vouch for a target tag, and how they persist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocync.engine.cache import CheckedTag, TransferCache
from ocync.engine.cachefile import CacheFile
from ocync.engine.tagtrust import stamp_fresh, trusted_digest

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


@pytest.mark.parametrize(
    ("at", "now", "ttl", "fresh"),
    [
        (100.0, 100.0, 10.0, True),
        (100.0, 110.0, 10.0, True),  # exactly cache_ttl old
        (100.0, 110.5, 10.0, False),
        (100.0, 99.0, 10.0, False),  # from the future: its age is unknown
        (100.0, 1e9, None, True),  # no ttl
    ],
)
def test_stamp_fresh(at: float, now: float, ttl: float | None, fresh: bool) -> None:
    assert stamp_fresh(CheckedTag(D1, at), now, ttl) is fresh


def test_trusted_digest_needs_the_same_source_digest_and_a_target_digest() -> None:
    stamp = CheckedTag(D1, 100.0)
    assert trusted_digest(stamp, D2, D1, 101.0, 10.0) == D2  # trimmed: target digest differs
    assert trusted_digest(stamp, D2, D2, 101.0, 10.0) is None  # the source moved on
    assert trusted_digest(stamp, None, D1, 101.0, 10.0) is None
    assert trusted_digest(None, D1, D1, 101.0, 10.0) is None


def test_record_tag_stamps_source_and_time_and_round_trips() -> None:
    cache = TransferCache()
    cache.clock = lambda: 42.0
    cache.record_tag("dst", "lib/a", "1", D2, source=D1)
    cache.record_tag("dst", "lib/a", "2", D1)
    again = TransferCache.from_payload(json.loads(json.dumps(cache.to_payload())))
    assert again.checked_tag("dst", "lib/a", "1") == CheckedTag(D1, 42.0)
    assert again.checked_tag("dst", "lib/a", "2") == CheckedTag(D1, 42.0)
    assert again.tag_digest("dst", "lib/a", "1") == D2
    again.invalidate_repo("dst", "lib/a")
    assert again.checked_tag("dst", "lib/a", "1") is None


def test_a_cache_file_without_stamps_loads_and_vouches_for_nothing(tmp_path: Path) -> None:
    """Files written before the stamps were kept: their tags are checked at the target."""
    cache = TransferCache()
    cache.record_tag("dst", "lib/a", "1", D1)
    payload = cache.to_payload()
    del payload["registries"]["dst"]["checked"]
    loaded = TransferCache.from_payload(payload)
    assert loaded.tag_digest("dst", "lib/a", "1") == D1
    assert loaded.checked_tag("dst", "lib/a", "1") is None
    # and through the file, saved then loaded
    f = CacheFile(tmp_path, ttl=100.0)
    f.save(loaded, now=10.0)
    assert f.load(now=20.0).checked_tag("dst", "lib/a", "1") is None


@pytest.mark.parametrize("bad", [{"lib/a:1": "x"}, {"lib/a:1": [D1]}, {"lib/a:1": [D1, True]},
                                 {"lib/a:1": [1, 2.0]}, ["lib/a:1"]])
def test_a_malformed_stamp_is_refused(bad: object) -> None:
    """ValueError: CacheFile.load then discards the file with its "corrupt" warning."""
    cache = TransferCache()
    cache.record_tag("dst", "lib/a", "1", D1)
    payload = cache.to_payload()
    payload["registries"]["dst"]["checked"] = bad
    with pytest.raises(ValueError, match="checked"):
        TransferCache.from_payload(payload)
