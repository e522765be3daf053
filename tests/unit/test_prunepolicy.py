"""Pruning's pure decisions: what is deleted, what is kept, when it is refused; and the
ownership record that outlives the transfer cache's freshness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocync.config.resolve import PrunePolicy
from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import CacheFile
from ocync.engine.prunepolicy import decide_prune, digest_blockers, source_refusal

FALLBACK = "sha256-" + "a" * 64


@pytest.mark.parametrize(
    ("owned", "selected", "policy", "force", "delete", "kept", "refused"),
    [
        pytest.param({"1", "2", "3", "4"}, {"2", "3", "4"}, PrunePolicy(True), False, ("1",), (), False,
                     id="one-fell-out"),
        pytest.param({"1", "2", "3", "4"}, {"3", "4"}, PrunePolicy(True), False, ("1", "2"), (), False,
                     id="exactly-the-fraction-is-allowed"),
        pytest.param({"1", "2", "3", "4"}, {"4"}, PrunePolicy(True), False, (), (), True,
                     id="more-than-the-fraction-is-refused"),
        pytest.param({"1", "2", "3", "4"}, {"4"}, PrunePolicy(True), True, ("1", "2", "3"), (), False,
                     id="force-lifts-the-fraction"),
        pytest.param({"1", "2", "3", "4"}, {"4"}, PrunePolicy(True, max_fraction=1.0), False,
                     ("1", "2", "3"), (), False, id="max-fraction-1"),
        pytest.param({"release-1", "2", "3", "4"}, {"3", "4"}, PrunePolicy(True, keep=("release-*",)),
                     False, ("2",), ("release-1",), False, id="keep-glob"),
        pytest.param({"release-1", "2"}, set(), PrunePolicy(True, keep=("release-*",)), True,
                     ("2",), ("release-1",), False, id="force-never-lifts-keep"),
        pytest.param({FALLBACK, "1", "2"}, {"1", "2"}, PrunePolicy(True), False, (), (), False,
                     id="referrers-fallback-tag-never"),
        pytest.param(set(), {"1"}, PrunePolicy(True), False, (), (), False, id="nothing-owned"),
        pytest.param({"old", "new"}, {"new"}, PrunePolicy(True), False, ("old",), (), False,
                     id="latest-1-rollover-is-half"),
    ],
)
def test_decide_prune(
    owned: set[str], selected: set[str], policy: PrunePolicy, force: bool,
    delete: tuple[str, ...], kept: tuple[str, ...], refused: bool,
) -> None:
    decision = decide_prune(owned, selected, policy, force=force)
    assert decision.delete == delete
    assert decision.kept == kept
    assert (decision.refusal is not None) == refused
    if refused:
        assert "max_fraction" in decision.refusal and "--force-prune" in decision.refusal  # type: ignore[operator]
        assert decision.refused and not decision.delete


@pytest.mark.parametrize(
    ("error", "listed", "selected", "expected"),
    [
        pytest.param("mapping m: 500", None, 0, "could not be listed", id="listing-failed"),
        pytest.param("", 0, 0, "listed no tags", id="empty-listing"),
        pytest.param("", 3, 0, "selected no tags", id="filter-selects-nothing"),
        pytest.param("", None, 2, None, id="literal-includes-not-listed"),
        pytest.param("", 3, 2, None, id="ok"),
    ],
)
def test_source_refusal(error: str, listed: int | None, selected: int, expected: str | None) -> None:
    why = source_refusal(error, listed, selected)
    assert (why is None) == (expected is None)
    if expected is not None:
        assert why is not None and expected in why


def test_digest_blockers_name_every_other_tag_on_the_digest() -> None:
    deleting = {"old": "sha256:a", "older": "sha256:b", "twin": "sha256:a"}
    others = {"keepme": "sha256:a", "unrelated": "sha256:c", "unknown": None, "old": "sha256:a"}
    assert digest_blockers(deleting, others) == {"old": ("keepme",), "twin": ("keepme",)}
    assert digest_blockers({"old": "sha256:a", "twin": "sha256:a"}, {"x": "sha256:b"}) == {}


tags = st.sets(st.sampled_from([f"v{i}" for i in range(12)] + ["release-1", "release-2", FALLBACK]))


@given(
    owned=tags,
    selected=tags,
    keep=st.lists(st.sampled_from(["release-*", "v1*", "nomatch"]), max_size=2),
    fraction=st.floats(min_value=0.01, max_value=1.0),
    force=st.booleans(),
)
def test_never_deletes_kept_selected_or_unowned_and_respects_the_fraction(
    owned: set[str], selected: set[str], keep: list[str], fraction: float, force: bool
) -> None:
    policy = PrunePolicy(True, tuple(keep), fraction)
    decision = decide_prune(owned, selected, policy, force=force)
    deleted = set(decision.delete)
    assert deleted <= owned, "never an unowned tag"
    assert not deleted & selected, "never a selected tag"
    assert not any(policy.keeps(t) for t in deleted), "never a kept tag"
    assert FALLBACK not in deleted
    if not force:
        assert len(deleted) <= fraction * len(owned) + 1e-9
    if decision.refusal is not None:
        assert not deleted and not force
    # what is neither deleted nor refused is owned, unselected and kept (or fallback) only
    assert deleted | set(decision.refused) == {
        t for t in owned - selected if not policy.keeps(t) and t != FALLBACK
    }


def test_ownership_outlives_an_expired_cache_file(tmp_path: Path) -> None:
    cache = TransferCache()
    cache.record_tag("reg", "mirror/r", "1.0", "sha256:a")
    cache.owned.record("reg", "mirror/r", "1.0", "sha256:a", "src/lib/r")
    cache.owned.record("reg", "mirror/r", "0.9", "sha256:b", "src/lib/r")
    cache.owned.record("reg", "mirror/r", "x", "sha256:c", "src/other")
    cache.owned.record("reg", "mirror/r2", "y", "sha256:d", "src/lib/r")
    file = CacheFile(tmp_path, ttl=100)
    file.save(cache, now=1000.0)
    fresh = file.load(now=1050.0)
    assert fresh.tag_digest("reg", "mirror/r", "1.0") == "sha256:a"
    assert fresh.owned.owned_tags("reg", "mirror/r", "src/lib/r") == {"1.0": "sha256:a", "0.9": "sha256:b"}
    expired = file.load(now=2000.0)
    assert expired.tag_digest("reg", "mirror/r", "1.0") is None, "freshness is gone"
    assert expired.checked_tag("reg", "mirror/r", "1.0") is None
    assert expired.owned.owned_tags("reg", "mirror/r", "src/lib/r") == {"1.0": "sha256:a", "0.9": "sha256:b"}
    assert expired.owned.owned_tags("reg", "mirror/r", "src/other") == {"x": "sha256:c"}
    future = file.load(now=10.0)
    assert future.owned.owned_tags("reg", "mirror/r2", "src/lib/r") == {"y": "sha256:d"}


def test_a_cache_file_without_ownership_loads_and_owns_nothing(tmp_path: Path) -> None:
    cache = TransferCache()
    cache.record_tag("reg", "mirror/r", "1.0", "sha256:a")
    payload = cache.to_payload()
    assert "owned" not in payload["registries"]["reg"], "nothing owned: the old shape"
    file = CacheFile(tmp_path, ttl=None)
    file.save(cache, now=1.0)
    loaded = file.load(now=2.0)
    assert loaded.loaded and loaded.tag_digest("reg", "mirror/r", "1.0") == "sha256:a"
    assert loaded.owned.owned_tags("reg", "mirror/r", "src/lib/r") == {}


def test_forget_tag_drops_digest_stamp_and_ownership() -> None:
    cache = TransferCache()
    cache.record_tag("reg", "mirror/r", "1.0", "sha256:a")
    cache.owned.record("reg", "mirror/r", "1.0", "sha256:a", "src/lib/r")
    cache.forget_tag("reg", "mirror/r", "1.0")
    assert cache.tag_digest("reg", "mirror/r", "1.0") is None
    assert cache.checked_tag("reg", "mirror/r", "1.0") is None
    assert cache.owned.owned_tags("reg", "mirror/r", "src/lib/r") == {}
    assert "owned" not in json.dumps(cache.to_payload())


@pytest.mark.parametrize(
    "owned", [pytest.param({"k:t": ["sha256:a"]}, id="short"), pytest.param([], id="not-object"),
              pytest.param({"k:t": ["sha256:a", 3]}, id="not-strings")],
)
def test_malformed_ownership_is_rejected(owned: object) -> None:
    with pytest.raises(ValueError, match="owned"):
        TransferCache.from_payload({"registries": {"reg": {"owned": owned}}})


def _resolved_prune(defaults: str, mapping: str) -> PrunePolicy:
    from ocync.config import parse_config_text

    text = (
        "registries: {a: {url: '127.0.0.1:1'}}\n"
        f"defaults: {{source: a, targets: a{defaults}}}\n"
        f"mappings:\n  - {{from: x, to: y{mapping}}}\n"
    )
    [resolved] = parse_config_text(text).config.resolve()
    return resolved.prune


@pytest.mark.parametrize(
    ("defaults", "mapping", "expected"),
    [
        pytest.param("", "", PrunePolicy(), id="off-by-default"),
        pytest.param("", ", prune: true", PrunePolicy(True), id="true"),
        pytest.param(", prune: true", ", prune: false", PrunePolicy(False), id="mapping-turns-it-off"),
        pytest.param(", prune: {keep: [r-*], max_fraction: 0.2}", ", prune: true",
                     PrunePolicy(True, ("r-*",), 0.2), id="fields-inherited"),
        pytest.param(", prune: {enabled: true, keep: r-*}", ", prune: {keep: [v1]}",
                     PrunePolicy(True, ("v1",), 0.5), id="field-by-field"),
    ],
)
def test_prune_config_resolves_field_by_field(defaults: str, mapping: str, expected: PrunePolicy) -> None:
    assert _resolved_prune(defaults, mapping) == expected
