"""What a layout costs on the wire (the mocks' ``/_mock/stats``), and that a second sync into
the same layout writes nothing: a layout is no registry, so the source pays what it pays for
any cold target and the layout side sends nothing; a warm layout -> registry run pays at the
target what a warm registry -> registry run pays."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mockregistry import MockOptions, serve_mock
from stress.corpus import build_corpus, push_corpus, verify_corpus
from tests.integration.layoutsupport import layout_problems
from tests.integration.test_wire_counts import (
    EXPECTED_SYNC_COLD,
    EXPECTED_SYNC_WARM,
    SYNC_SPEC,
    TARGET_NAMESPACE,
    TOKEN,
    USER,
    explain,
    hermetic_env,
    mocks,
    reset,
    run_ocync,
    wire_counts,
)


def layout_config(path: Path, *, src: str | None, layout: Path, dst: str | None, profile: str,
                  repos: list[str], cache: Path) -> None:
    """registry src -> layout (dst None) or layout -> registry dst (src None)."""
    lines = ["global:", f"  cache_dir: {cache}", "registries:",
             "  carry:", "    type: oci-layout", f"    path: {layout}"]
    if src is not None:
        lines += ["  src:", f"    url: {src}"]
        lines += ["defaults:", "  source: src", "  targets: carry", "mappings:"]
        lines += [f"  - {{from: {r}}}" for r in repos]
    else:
        lines += ["  dst:", f"    url: {dst}", f"    profile: {profile}"]
        lines.append(f"    credentials: {{username: {USER}, password: {TOKEN}}}" if profile == "ghcr"
                     else "    auth_type: anonymous")
        lines += ["defaults:", "  source: carry", "  targets: dst", "mappings:"]
        lines += [f"  - {{from: {r}, to: {TARGET_NAMESPACE}/{r.rsplit('/', 1)[1]}}}" for r in repos]
    path.write_text("\n".join(lines) + "\n")


def blob_files(layout: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in (layout / "blobs").glob("*/*")}


async def test_sync_into_a_layout_costs_the_source_side_of_a_cold_sync_and_nothing_more(
    tmp_path: Path,
) -> None:
    corpus = build_corpus(SYNC_SPEC)
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    layout, config = tmp_path / "mirror", tmp_path / "export.yaml"
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src:
        await push_corpus(corpus, src.url)
        layout_config(config, src=src.host, layout=layout, dst=None, profile="generic", repos=repos,
                      cache=tmp_path / "cache")
        src.reset_stats()
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        cold = {k: n for k, n in src.stats()["by_kind"].items() if n}
        report: dict[str, Any] = json.loads(out)
        before = blob_files(layout)
        src.reset_stats()
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
        again: dict[str, Any] = json.loads(out)
    expected = EXPECTED_SYNC_COLD["generic"]["src"]
    assert cold == expected, explain("cold sync into a layout", {"src": cold}, {"src": expected})
    assert report["summary"]["images_synced"] == len(corpus.images), report["summary"]
    assert report["summary"]["requests"] == sum(cold.values())  # the layout sent nothing
    assert report["controllers"]["carry"]["blobs_written"] == len(corpus.blobs)
    assert layout_problems(layout) == []
    # dedup: the second sync writes nothing (no blob file replaced or touched)
    assert again["summary"]["images_skipped"] == len(corpus.images), again["summary"]
    assert again["controllers"]["carry"]["blobs_written"] == 0
    assert again["controllers"]["carry"]["manifests_written"] == 0
    assert again["controllers"]["carry"]["index_writes"] == 0
    assert blob_files(layout) == before


@pytest.mark.parametrize("profile", ["generic", "ghcr"])
async def test_warm_layout_to_registry_costs_what_a_warm_registry_to_registry_sync_costs(
    profile: str, tmp_path: Path,
) -> None:
    corpus = build_corpus(SYNC_SPEC)
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    layout = tmp_path / "mirror"
    async with mocks(profile) as m:
        await push_corpus(corpus, m.src.url)
        export, imp = tmp_path / "export.yaml", tmp_path / "import.yaml"
        layout_config(export, src=m.src.host, layout=layout, dst=None, profile=profile, repos=repos,
                      cache=tmp_path / "cache-export")
        await run_ocync(env, "sync", "-c", str(export))
        layout_config(imp, src=None, layout=layout, dst=m.dst.host, profile=profile, repos=repos,
                      cache=tmp_path / "cache-import")
        out, _ = await run_ocync(env, "sync", "-c", str(imp), "--json")
        assert json.loads(out)["summary"]["images_synced"] == len(corpus.images)
        repo_map = {r: f"{TARGET_NAMESPACE}/{r.rsplit('/', 1)[1]}" for r in repos}
        credentials = {"username": USER, "password": TOKEN} if profile == "ghcr" else {}
        assert await verify_corpus(corpus, m.dst.url, repo_map=repo_map, **credentials) == []
        reset(m)
        out, _ = await run_ocync(env, "sync", "-c", str(imp), "--json")
        warm = await wire_counts(m)
        summary = json.loads(out)["summary"]
    assert summary["images_skipped"] == len(corpus.images), summary
    expected = EXPECTED_SYNC_WARM[profile]["dst"]
    assert warm["dst"] == expected, explain("warm layout -> registry", warm, {"src": {}, "dst": expected})
    assert warm["src"] == {}  # the source registry is not part of this run



async def test_analyze_shows_the_size_to_carry_into_a_layout(tmp_path: Path) -> None:
    """``ocync analyze`` on the export config: the layout target's upload_bytes is what the
    export then writes (each unique blob once: blobs/ is shared by the layout's repositories),
    with no request counted at the layout. (Referrers are left out: analyze reads image trees
    only, for any target.)"""
    corpus = build_corpus(dataclasses.replace(SYNC_SPEC, referrers_per_image=0))
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    layout, config = tmp_path / "mirror", tmp_path / "export.yaml"
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src:
        await push_corpus(corpus, src.url)
        layout_config(config, src=src.host, layout=layout, dst=None, profile="generic", repos=repos,
                      cache=tmp_path / "cache")
        out, _ = await run_ocync(env, "analyze", "-c", str(config), "--json")
        [target] = json.loads(out)["targets"]
        assert not layout.exists()  # analyze writes nothing
        text, _ = await run_ocync(env, "analyze", "-c", str(config))
        await run_ocync(env, "sync", "-c", str(config))
    carried = sum(p.stat().st_size for p in (layout / "blobs").glob("*/*")
                  if f"{p.parent.name}:{p.name}" in corpus.blobs)
    assert target["upload_bytes"] == carried == sum(b.size for b in corpus.blobs.values())
    assert target["uploads"] == len(corpus.blobs)
    assert (target["profile"], target["mount_scope"], target["requests"]) == ("oci-layout", "none", 0)
    assert "target carry (oci-layout" in text


async def test_export_into_a_fresh_directory_with_the_same_cache_writes_everything(tmp_path: Path) -> None:
    """The air-gap routine: the layout is carried away and the next export starts in an empty
    directory while the transfer cache remembers the last one. Tags are verified (a stat) and
    a manifest naming a blob the cache says is there but is not is refused like a registry's
    MANIFEST_BLOB_UNKNOWN, so the engine rechecks: the new layout is complete."""
    corpus = build_corpus(SYNC_SPEC)
    repos = sorted(corpus.repos)
    env = hermetic_env(tmp_path)
    layout, config = tmp_path / "mirror", tmp_path / "export.yaml"
    async with serve_mock(MockOptions(profile="generic", seed=1)) as src:
        await push_corpus(corpus, src.url)
        layout_config(config, src=src.host, layout=layout, dst=None, profile="generic", repos=repos,
                      cache=tmp_path / "cache")
        await run_ocync(env, "sync", "-c", str(config))
        layout.rename(tmp_path / "carried")
        out, _ = await run_ocync(env, "sync", "-c", str(config), "--json")
    report: dict[str, Any] = json.loads(out)
    assert report["summary"]["images_synced"] == len(corpus.images), report["summary"]
    assert report["controllers"]["carry"]["blobs_written"] == len(corpus.blobs)
    assert layout_problems(layout) == []
    assert sorted(p.name for p in (layout / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (tmp_path / "carried" / "blobs" / "sha256").iterdir()
    )
