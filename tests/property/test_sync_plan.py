"""Properties of the pure sync decisions and of the transfer-cache file format."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import CacheFile
from ocync.engine.plan import (
    BlobActionKind,
    BlobRefCounts,
    MountScope,
    choose_blob_action,
    mount_group,
    mount_possible,
    namespace_of,
)

repos = st.sampled_from(["a/x", "a/y", "b/x", "b/z", "c", "a/x/deep"])
digests = st.sampled_from([f"sha256:{c * 64}" for c in "0123456789"])
scopes = st.sampled_from(list(MountScope))


@given(target=repos, holders=st.lists(repos, max_size=5), committed=st.sets(repos),
       scope=scopes, probe=st.booleans())
def test_mounts_only_where_they_can_succeed(
    target: str, holders: list[str], committed: set[str], scope: MountScope, probe: bool
) -> None:
    action = choose_blob_action(target, holders=holders, committed=committed, scope=scope, self_probe=probe)
    if action.kind is BlobActionKind.MOUNT:
        assert action.from_repo in holders and action.from_repo != target
        assert mount_possible(scope, action.from_repo, target)
        if scope is MountScope.NAMESPACE:
            assert namespace_of(action.from_repo) == namespace_of(target)
        usable_committed = [h for h in holders if h in committed and mount_possible(scope, h, target)]
        if usable_committed:
            assert action.from_repo in committed
    elif action.kind is BlobActionKind.PROBE:
        assert probe and scope is not MountScope.NONE and action.from_repo == target
        assert not any(mount_possible(scope, h, target) for h in holders)
    else:
        assert action.kind is BlobActionKind.HEAD
        assert not any(mount_possible(scope, h, target) for h in holders)


@given(scope=scopes, a=repos, b=repos)
def test_mount_group_agrees_with_mount_possible(scope: MountScope, a: str, b: str) -> None:
    if a != b and mount_possible(scope, a, b):
        assert mount_group(scope, "reg", a) == mount_group(scope, "reg", b)
    if scope is not MountScope.NONE and mount_group(scope, "reg", a) == mount_group(scope, "reg", b) and a != b:
        assert mount_possible(scope, a, b)


@given(images=st.lists(st.lists(digests, max_size=6), max_size=8))
def test_refcount_order_is_a_permutation_most_shared_first(images: list[list[str]]) -> None:
    counts = BlobRefCounts()
    for blobs in images:
        counts.add(blobs)
    for blobs in images:
        ordered = counts.order(blobs)
        assert sorted(ordered) == sorted(set(blobs))
        shares = [counts.count(d) for d in ordered]
        assert shares == sorted(shares, reverse=True)
        assert counts.leader_score(blobs) == sum(counts.count(d) - 1 for d in set(blobs))


records = st.lists(st.tuples(st.sampled_from(["r1", "r2"]), repos, digests), max_size=30)


@settings(max_examples=50)
@given(blobs=records, tags=st.lists(st.tuples(st.sampled_from(["r1", "r2"]), repos,
                                               st.sampled_from(["1", "2", "latest"]), digests), max_size=10))
def test_cache_file_round_trip(blobs: list[tuple[str, str, str]], tags: list[tuple[str, str, str, str]]) -> None:
    cache = TransferCache()
    for reg, repo, d in blobs:
        cache.record_blob(reg, repo, d)
    for reg, repo, tag, d in tags:
        cache.record_tag(reg, repo, tag, d)
    with tempfile.TemporaryDirectory() as tmp:
        f = CacheFile(Path(tmp), ttl=60)
        f.save(cache, now=100.0)
        back = f.load(now=150.0)
    committed = {(reg, repo) for reg, repo, _, _ in tags}
    for reg, repo, d in blobs:
        # only repositories with a committed manifest are persisted
        assert back.has_blob(reg, repo, d) is ((reg, repo) in committed)
    for reg, repo, tag, _ in tags:
        assert back.tag_digest(reg, repo, tag) == cache.tag_digest(reg, repo, tag)
