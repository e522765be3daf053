"""Transfer-state cache: memory semantics, atomic persistence, checksum, TTL, lock."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import CacheFile

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _filled() -> TransferCache:
    c = TransferCache()
    c.record_blob("ghcr.io", "org/a", D1)
    c.record_blob("ghcr.io", "org/a", D2)
    c.record_blob("ghcr.io", "org/b", D1)
    c.record_blob("ghcr.io", "org/uncommitted", D2)
    c.record_tag("ghcr.io", "org/a", "1.0", D2)
    c.record_committed("ghcr.io", "org/b")
    return c


def test_memory_semantics() -> None:
    c = _filled()
    assert c.has_blob("ghcr.io", "org/a", D1)
    assert not c.has_blob("ghcr.io", "org/b", D2)
    assert not c.has_blob("other", "org/a", D1)
    assert c.holders("ghcr.io", D2) == ["org/a", "org/uncommitted"]
    assert c.tag_digest("ghcr.io", "org/a", "1.0") == D2
    assert c.committed("ghcr.io") == {"org/a", "org/b"}
    c.invalidate_blob("ghcr.io", "org/a", D1)
    assert c.holders("ghcr.io", D1) == ["org/b"]
    c.invalidate_repo("ghcr.io", "org/a")
    assert c.tag_digest("ghcr.io", "org/a", "1.0") is None
    s = c.statistics()
    assert (s.hits, s.misses, s.invalidations) == (1, 2, 2)
    assert "hits=1" in repr(c)


def test_roundtrip_persists_committed_only(tmp_path: Path) -> None:
    f = CacheFile(tmp_path, ttl=3600)
    f.save(_filled(), now=1000.0)
    loaded = f.load(now=1500.0)
    assert loaded.loaded
    assert loaded.has_blob("ghcr.io", "org/a", D1)
    assert loaded.has_blob("ghcr.io", "org/b", D1)
    assert not loaded.has_blob("ghcr.io", "org/uncommitted", D2)
    assert loaded.tag_digest("ghcr.io", "org/a", "1.0") == D2
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_file_is_empty(tmp_path: Path) -> None:
    c = CacheFile(tmp_path / "nope", ttl=None).load(now=0)
    assert c.statistics().blob_entries == 0 and not c.loaded


def _corrupt_checksum(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["payload"] = doc["payload"].replace("org/a", "org/z")
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("mutate", "now", "message"),
    [
        pytest.param(lambda p: p.write_text("{not json"), 1000.0, "corrupt", id="not-json"),
        pytest.param(lambda p: p.write_text("[]"), 1000.0, "corrupt", id="wrong-shape"),
        pytest.param(_corrupt_checksum, 1000.0, "checksum", id="checksum"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:40]), 1000.0, "corrupt", id="truncated"),
        pytest.param(lambda p: None, 1000.0 + 7200, "expired", id="expired"),
    ],
)
def test_bad_file_discarded_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mutate: object, now: float, message: str
) -> None:
    f = CacheFile(tmp_path, ttl=3600)
    f.save(_filled(), now=1000.0)
    mutate(f.path)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="ocync.engine.cache"):
        c = f.load(now=now)
    assert c.statistics().blob_entries == 0
    assert message in caplog.text


def test_lock_excludes_second_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = CacheFile(tmp_path, ttl=None)
    second = CacheFile(tmp_path, ttl=None)
    assert first.acquire()
    with caplog.at_level(logging.WARNING, logger="ocync.engine.cache"):
        assert not second.acquire()
    assert "locked by another" in caplog.text
    first.release()
    assert second.acquire()
    second.release()
    assert not second.locked


def test_unwritable_cache_dir_warns_and_runs_without_saving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    f = CacheFile(blocker / "cache", ttl=None)
    with caplog.at_level(logging.WARNING, logger="ocync.engine.cache"):
        assert not f.acquire()
    assert "not writable" in caplog.text
    assert f.load(now=0).statistics().blob_entries == 0


def test_referrers_persist_per_committed_repo_and_are_dropped_with_it(tmp_path: Path) -> None:
    c = _filled()
    c.record_referrer("ghcr.io", "org/a", D1)
    c.record_referrer("ghcr.io", "org/uncommitted", D2)  # not persisted: may be collected
    f = CacheFile(tmp_path, ttl=None)
    f.save(c, now=0.0)
    back = f.load(now=1.0)
    assert back.has_referrer("ghcr.io", "org/a", D1)
    assert not back.has_referrer("ghcr.io", "org/a", D2)
    assert not back.has_referrer("ghcr.io", "org/uncommitted", D2)
    assert not back.has_referrer("other", "org/a", D1)
    back.invalidate_repo("ghcr.io", "org/a")
    assert not back.has_referrer("ghcr.io", "org/a", D1)


def _with_payload(path: Path, payload: object) -> None:
    """A well-formed cache document (right checksum) around ``payload``."""
    text = json.dumps(payload)
    doc = json.loads(path.read_text())
    doc["payload"] = text
    doc["checksum"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    path.write_text(json.dumps(doc))


def _with_field(path: Path, key: str, value: object) -> None:
    doc = json.loads(path.read_text())
    doc[key] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda p: p.write_bytes(b"\xff\xfe\x00garbage\x80"), "corrupt", id="not-utf8"),
        pytest.param(lambda p: p.write_bytes(bytes(range(256))), "corrupt", id="binary"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-1] + b"\xe9"), "corrupt", id="latin1-tail"),
        pytest.param(lambda p: p.write_text("[" * 100_000), "corrupt", id="deeply-nested"),
        pytest.param(lambda p: _with_payload(p, {"registries": []}), "corrupt", id="registries-list"),
        pytest.param(lambda p: _with_payload(p, {"registries": {"r": 3}}), "corrupt", id="entry-number"),
        pytest.param(
            lambda p: _with_payload(p, {"registries": {"r": {"repositories": {"a": "sha256:x"}}}}),
            "corrupt",
            id="digests-string",
        ),
        pytest.param(
            lambda p: _with_payload(p, {"registries": {"r": {"committed": [1, 2]}}}),
            "corrupt",
            id="committed-numbers",
        ),
        pytest.param(
            lambda p: _with_payload(p, {"registries": {"r": {"tags": {"a:1": None}}}}),
            "corrupt",
            id="tag-null",
        ),
        pytest.param(lambda p: _with_payload(p, {}), "corrupt", id="payload-empty"),
        pytest.param(lambda p: _with_field(p, "saved_at", "yesterday"), "corrupt", id="saved-at-text"),
        pytest.param(lambda p: _with_field(p, "saved_at", True), "corrupt", id="saved-at-bool"),
        pytest.param(lambda p: _with_field(p, "saved_at", 1e9), "future", id="saved-in-the-future"),
    ],
)
def test_unreadable_content_discarded_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mutate: object, message: str
) -> None:
    f = CacheFile(tmp_path, ttl=3600)
    f.save(_filled(), now=1000.0)
    mutate(f.path)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="ocync.engine.cache"):
        c = f.load(now=1500.0)
    assert c.statistics().blob_entries == 0 and not c.loaded
    assert message in caplog.text


def test_future_cache_is_not_trusted_even_without_ttl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = CacheFile(tmp_path, ttl=None)
    f.save(_filled(), now=5000.0)
    with caplog.at_level(logging.WARNING, logger="ocync.engine.cache"):
        c = f.load(now=1000.0)  # the clock went back by more than an hour
    assert not c.loaded and c.statistics().blob_entries == 0
    assert "future" in caplog.text
    assert f.load(now=5000.0).loaded  # saved "just now" is fine
