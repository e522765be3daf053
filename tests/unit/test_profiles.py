"""Registry profiles are data; selection by name or by the host table."""

from __future__ import annotations

import pytest

from ocync.engine.plan import mount_possible
from ocync.errors import ConfigError
from ocync.ratelimit.bucket import parse_rate
from ocync.registry.profiles import (
    DOCKERHUB,
    GENERIC,
    GHCR,
    PROFILES,
    REQUEST_KINDS,
    MountScope,
    select_profile,
)


@pytest.mark.parametrize(
    ("host", "name", "expected"),
    [
        ("ghcr.io", None, "ghcr"),
        ("GHCR.IO", None, "ghcr"),
        ("docker.io", None, "dockerhub"),
        ("registry-1.docker.io", None, "dockerhub"),
        ("quay.io", None, "generic"),
        ("127.0.0.1:5000", None, "generic"),
        ("127.0.0.1:5000", "ghcr", "ghcr"),
        ("ghcr.io", "generic", "generic"),
    ],
)
def test_select_profile(host: str, name: str | None, expected: str) -> None:
    assert select_profile(host, name).name == expected


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="unknown registry profile 'quay'"):
        select_profile("x", "quay")


def test_ghcr_quirks() -> None:
    # One PATCH per blob is the upload strategy itself (a profile field saying "several
    # PATCHes are unsafe" had no reader and went).
    assert GHCR.upload_strategy == "single_patch" and GHCR.multi_scope_tokens
    assert GHCR.referrers_api is False and GHCR.tags_page_size == 100
    assert GHCR.documented_cap is not None and parse_rate(GHCR.documented_cap).count == 2000
    # every metered kind shares one window; the storage host is not GHCR's API
    keys = {GHCR.window_groups[kind] for kind in REQUEST_KINDS if kind != "storage_get"}
    assert keys == {"all"} and GHCR.window_groups["storage_get"] is None


def test_dockerhub_heads_unmetered_manifest_reads_apart() -> None:
    assert DOCKERHUB.window_groups["manifest_head"] is None
    assert DOCKERHUB.window_groups["blob_head"] is None
    assert DOCKERHUB.window_groups["manifest_get"] == "manifest_get"
    assert "blob_get" not in DOCKERHUB.window_groups  # -> "default"


def test_generic_coarse_groups() -> None:
    groups = {GENERIC.window_groups[k] for k in REQUEST_KINDS if k in GENERIC.window_groups}
    assert groups == {"head", "read", "upload", "manifest_write", "tags", None}
    assert GENERIC.mount_probe_ok and GENERIC.upload_strategy == "stream_put"


@pytest.mark.parametrize(
    ("scope", "target", "source", "ok"),
    [
        ("any", "a/x", "b/y", True),
        ("namespace", "a/x", "a/y", True),
        ("namespace", "a/x", "b/x", False),
        ("none", "a/x", "a/y", False),
    ],
)
def test_mount_allowed(scope: str, target: str, source: str, ok: bool) -> None:
    profile = {"any": GENERIC, "namespace": GHCR}.get(scope)
    if profile is None:
        from dataclasses import replace

        profile = replace(GENERIC, mount_scope=MountScope.NONE)
    assert profile.mount_scope.value == scope
    assert mount_possible(profile.mount_scope, source, target) is ok


def test_profiles_are_frozen() -> None:
    for profile in PROFILES.values():
        with pytest.raises(AttributeError):
            profile.name = "x"  # type: ignore[misc]
        with pytest.raises(TypeError):
            profile.window_groups["ping"] = "x"  # type: ignore[index]
