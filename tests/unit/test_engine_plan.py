"""Pure planning decisions: mount source choice, reference counts, exit codes."""

from __future__ import annotations

import pytest

from ocync.engine.plan import (
    BlobAction,
    BlobActionKind,
    BlobRefCounts,
    MountScope,
    choose_blob_action,
    exit_code_for,
    mount_possible,
)

A = BlobActionKind


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            dict(holders=["org/a", "org/b"], committed={"org/b"}, scope=MountScope.ANY, self_probe=True),
            BlobAction(A.MOUNT, "org/b"),
            id="committed-holder-preferred",
        ),
        pytest.param(
            dict(holders=["org/a"], committed=set(), scope=MountScope.ANY, self_probe=False),
            BlobAction(A.MOUNT, "org/a"),
            id="uncommitted-holder-still-mountable",
        ),
        pytest.param(
            dict(holders=["other/a"], committed={"other/a"}, scope=MountScope.NAMESPACE, self_probe=True),
            BlobAction(A.PROBE, "org/app"),
            id="ghcr-cross-namespace-not-attempted-probe-instead",
        ),
        pytest.param(
            dict(holders=["other/a"], committed={"other/a"}, scope=MountScope.NAMESPACE, self_probe=False),
            BlobAction(A.HEAD),
            id="cross-namespace-no-probe-head-first",
        ),
        pytest.param(
            dict(holders=["org/x"], committed={"org/x"}, scope=MountScope.NAMESPACE, self_probe=False),
            BlobAction(A.MOUNT, "org/x"),
            id="ghcr-same-namespace-mounts",
        ),
        pytest.param(
            dict(holders=["org/app"], committed={"org/app"}, scope=MountScope.ANY, self_probe=False),
            BlobAction(A.HEAD),
            id="self-is-not-a-mount-source",
        ),
        pytest.param(
            dict(holders=["org/x"], committed={"org/x"}, scope=MountScope.NONE, self_probe=True),
            BlobAction(A.HEAD),
            id="no-mounts-at-all",
        ),
    ],
)
def test_choose_blob_action(kwargs: dict[str, object], expected: BlobAction) -> None:
    assert choose_blob_action("org/app", **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scope", "src", "dst", "ok"),
    [
        (MountScope.ANY, "a/x", "b/y", True),
        (MountScope.NAMESPACE, "a/x", "a/y", True),
        (MountScope.NAMESPACE, "a/x", "b/y", False),
        (MountScope.NAMESPACE, "single", "single2", False),
        (MountScope.NONE, "a/x", "a/y", False),
        (MountScope.ANY, "a/x", "a/x", False),
    ],
)
def test_mount_possible(scope: MountScope, src: str, dst: str, ok: bool) -> None:
    assert mount_possible(scope, src, dst) is ok


@pytest.mark.parametrize(
    ("value", "expected"),
    [("namespace", MountScope.NAMESPACE), ("none", MountScope.NONE), ("any", MountScope.ANY)],
)
def test_mount_scope_is_strict(value: str, expected: MountScope) -> None:
    assert MountScope(value) is expected
    with pytest.raises(ValueError):
        MountScope(value.upper() + "-typo")


def test_refcounts_order_and_leader() -> None:
    counts = BlobRefCounts()
    counts.add(["base", "app1", "base"])  # duplicates within an image count once
    counts.add(["base", "mid", "app2"])
    counts.add(["base", "mid", "app3"])
    assert counts.count("base") == 3
    assert counts.order(["app3", "mid", "base", "app3"]) == ["base", "mid", "app3"]
    assert counts.leader_score(["base", "mid", "app3"]) == 2 + 1
    assert counts.leader_score(["app1"]) == 0
    assert counts.statistics().to_dict() == {"images": 3, "unique_blobs": 5, "references": 8, "shared_blobs": 2}
    assert "shared=2" in repr(counts)


@pytest.mark.parametrize(
    ("synced", "skipped", "failed", "auth", "interrupted", "code"),
    [
        pytest.param(3, 1, 0, 0, False, 0, id="all-ok"),
        pytest.param(0, 0, 0, 0, False, 0, id="nothing-to-do"),
        pytest.param(0, 5, 0, 0, False, 0, id="all-skipped"),
        pytest.param(2, 0, 1, 0, False, 1, id="partial"),
        pytest.param(0, 0, 3, 0, False, 2, id="all-failed"),
        pytest.param(0, 0, 3, 3, False, 4, id="all-auth"),
        pytest.param(0, 0, 3, 1, False, 2, id="mixed-failures"),
        pytest.param(1, 0, 1, 1, False, 1, id="auth-partial"),
        pytest.param(2, 0, 0, 0, True, 1, id="interrupted-with-undone"),
        pytest.param(0, 0, 2, 0, True, 1, id="interrupted-after-only-failures"),
        pytest.param(0, 0, 2, 2, True, 1, id="interrupted-after-only-auth-failures"),
    ],
)
def test_exit_code(synced: int, skipped: int, failed: int, auth: int, interrupted: bool, code: int) -> None:
    assert exit_code_for(synced, skipped, failed, auth, interrupted) == code
