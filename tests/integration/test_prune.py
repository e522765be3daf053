"""``prune:`` through the real CLI against the mock: every safety rail shows at the wire as
the target mock's ``manifest_delete`` count, and at the target's tag list.

Source and target are generic mocks (the target deletes tags, OCI distribution 1.1); the
images are small single-platform manifests, one per tag, pushed with ocync's own client.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from mockregistry import MockOptions, serve_mock
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient

sys.path.insert(0, str(Path(__file__).parent))
from imageseed import make_image, push_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REPO, MIRROR = "lib/app", "mirror/app"


async def seed(url: str, repo: str, tags: list[str], seed_value: int = 1) -> dict[str, str]:
    """One distinct image per tag at ``url``/``repo``; tag -> digest."""
    rng = random.Random(seed_value)
    out: dict[str, str] = {}
    async with RegistryClient(url, ClientSettings(auth=AuthSettings(kind="anonymous"))) as client:
        for tag in tags:
            out[tag] = str(await push_image(client, repo, make_image(rng, tag, layers=1, layer_size=256)))
    return out


async def untag(url: str, repo: str, *tags: str) -> None:
    """The tags vanish at the source (OCI 1.1 tag deletion, the generic mock's)."""
    async with httpx.AsyncClient(base_url=url) as http:
        for tag in tags:
            assert (await http.delete(f"/v2/{repo}/manifests/{tag}")).status_code == 202


async def target_tags(url: str, repo: str) -> set[str]:
    async with httpx.AsyncClient(base_url=url) as http:
        return set((await http.get(f"/v2/{repo}/tags/list")).json().get("tags") or [])


def write_config(
    path: Path, src: str, dst: str, *, prune: str = "true", tags: str = "", ttl: str = "12h",
    dst_profile: str = "generic",
) -> Path:
    path.write_text(
        f"global: {{cache_dir: '{path.parent / 'cache'}', cache_ttl: {ttl}}}\n"
        f"registries:\n  src: {{url: '{src}'}}\n  dst: {{url: '{dst}', profile: {dst_profile}}}\n"
        f"defaults: {{source: src, targets: dst}}\n"
        f"mappings:\n  - {{from: {REPO}, to: {MIRROR}, prune: {prune}{tags}}}\n"
    )
    return path


async def cli(*args: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "ocync", *args], capture_stdout=True, capture_stderr=True,
        check=False, cwd=ROOT, env={**os.environ, "DOCKER_CONFIG": "/nonexistent"},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def sync_json(cfg: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = await cli("sync", "-c", str(cfg), "--json", *extra)
    assert "Traceback" not in err, err
    return code, json.loads(out), err


def deletes(mock: Any) -> int:
    return int(mock.stats()["by_kind"].get("manifest_delete", 0))


def pruned(doc: dict[str, Any], action: str = "deleted") -> list[str]:
    return sorted(p["tag"] for p in doc["prune"] if p["action"] == action)


async def test_a_tag_gone_at_the_source_is_pruned_and_a_foreign_tag_never(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        digests = await seed(src.url, REPO, ["1", "2", "3", "4"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host)
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert doc["prune"] == [] and deletes(dst) == 0
        # pushed by someone else, not by ocync: the filter (glob *) would select it, but it
        # is not at the source and ocync never wrote it
        await seed(dst.url, MIRROR, ["foreign"], seed_value=9)
        await untag(src.url, REPO, "1")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert deletes(dst) == 1
        assert pruned(doc) == ["1"]
        [event] = doc["prune"]
        assert event["target"] == f"dst/{MIRROR}:1" and event["digest"] == digests["1"]
        assert await target_tags(dst.url, MIRROR) == {"2", "3", "4", "foreign"}
        # the text report names the deletion and counts it
        await untag(src.url, REPO, "2")
        code, out, err = await cli("sync", "-c", str(cfg))
        assert code == 0, err
        assert f"pruned dst/{MIRROR}:2 {digests['2'][:19]}" in out, out
        assert "1 tag(s) pruned" in out, out
        assert await target_tags(dst.url, MIRROR) == {"3", "4", "foreign"}
        # the cache forgot the deleted tag: back at the source, it is copied again
        await seed(src.url, REPO, ["1"])
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert [i["target"] for i in doc["images"] if i["status"] == "synced"] == [f"dst/{MIRROR}:1"]
        assert deletes(dst) == 0 and "foreign" in await target_tags(dst.url, MIRROR)


async def test_a_tag_another_writer_moved_is_not_deleted(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1", "2", "3", "4"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host)
        assert (await sync_json(cfg))[0] == 0
        theirs = await seed(dst.url, MIRROR, ["1"], seed_value=99)  # re-pushed by someone else
        await untag(src.url, REPO, "1")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert deletes(dst) == 0 and pruned(doc) == []
        [event] = doc["prune"]
        assert event["action"] == "skipped" and event["digest"] == theirs["1"]
        assert "not ocync's any more" in event["reason"]
        assert await target_tags(dst.url, MIRROR) == {"1", "2", "3", "4"}
        # and it stays theirs: the next run does not even look at it
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0 and doc["prune"] == [] and deletes(dst) == 0, err


async def test_dry_run_lists_exactly_what_the_run_then_deletes(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1", "2", "3", "4"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host)
        assert (await sync_json(cfg))[0] == 0
        await untag(src.url, REPO, "1", "3")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg, "--dry-run")
        assert code == 0, err
        assert deletes(dst) == 0, "a dry run deletes nothing"
        assert pruned(doc, "would_delete") == ["1", "3"] and pruned(doc) == []
        code, out, err = await cli("sync", "-c", str(cfg), "--dry-run")
        assert code == 0, err
        assert sorted(line.split()[2] for line in out.splitlines() if line.startswith("would prune")) == [
            f"dst/{MIRROR}:1", f"dst/{MIRROR}:3"
        ], out
        assert deletes(dst) == 0 and await target_tags(dst.url, MIRROR) == {"1", "2", "3", "4"}
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert pruned(doc) == ["1", "3"] and deletes(dst) == 2
        # what pruning costs at the target of a warm run: a HEAD (still ocync's digest?) and a
        # DELETE by tag per pruned tag, on top of the run's one /v2/ ping
        assert {k: n for k, n in dst.stats()["by_kind"].items() if n} == {
            "ping": 1, "manifest_head": 2, "manifest_delete": 2,
        }
        assert await target_tags(dst.url, MIRROR) == {"2", "4"}


async def test_more_than_max_fraction_is_refused_unless_forced(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1", "2", "3", "4"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host)
        assert (await sync_json(cfg))[0] == 0
        await untag(src.url, REPO, "1", "2", "3")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 1, err
        assert deletes(dst) == 0
        assert pruned(doc, "refused") == ["1", "2", "3"]
        assert any("prune refused" in e and "max_fraction 0.5" in e for e in doc["errors"]), doc["errors"]
        assert "prune refused" in err and "--force-prune" in err, err
        code, doc, err = await sync_json(cfg, "--force-prune")
        assert code == 0, err
        assert pruned(doc) == ["1", "2", "3"] and deletes(dst) == 3
        assert await target_tags(dst.url, MIRROR) == {"4"}


async def test_keep_globs_are_never_deleted_even_when_forced(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["release-1", "2", "3", "4"])
        cfg = write_config(
            tmp_path / "ocync.yaml", src.host, dst.host,
            prune="{enabled: true, keep: ['release-*'], max_fraction: 0.5}",
        )
        assert (await sync_json(cfg))[0] == 0
        await untag(src.url, REPO, "release-1", "2", "3")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg, "--force-prune")
        assert code == 0, err
        assert pruned(doc) == ["2", "3"] and deletes(dst) == 2
        assert await target_tags(dst.url, MIRROR) == {"release-1", "4"}


async def test_latest_n_rollover_deletes_exactly_the_tag_that_fell_out(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1.0.0", "1.1.0", "1.2.0"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host,
                           tags=", tags: {sort: semver, latest: 3}")
        assert (await sync_json(cfg))[0] == 0
        await seed(src.url, REPO, ["1.3.0"], seed_value=5)
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert [i["target"] for i in doc["images"] if i["status"] == "synced"] == [f"dst/{MIRROR}:1.3.0"]
        assert pruned(doc) == ["1.0.0"] and deletes(dst) == 1
        assert await target_tags(dst.url, MIRROR) == {"1.1.0", "1.2.0", "1.3.0"}
        # still at the source, no longer selected, already pruned: nothing more to do
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0 and doc["prune"] == [] and deletes(dst) == 0, err


async def test_an_empty_source_listing_prunes_nothing(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1", "2"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host)
        assert (await sync_json(cfg))[0] == 0
        await untag(src.url, REPO, "1", "2")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg, "--force-prune")
        assert deletes(dst) == 0 and doc["prune"] == []
        assert code == 0, err
        assert any("nothing pruned: the source listed no tags" in w for w in doc["warnings"]), doc
        assert "nothing pruned: the source listed no tags" in err
        assert await target_tags(dst.url, MIRROR) == {"1", "2"}


async def test_pruning_still_works_after_the_cache_expired(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1", "2", "3"])
        # 1ms: every run finds the previous run's cache expired (a process starts slower)
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, ttl="1ms")
        assert (await sync_json(cfg))[0] == 0
        await untag(src.url, REPO, "3")
        dst.reset_stats()
        code, doc, err = await sync_json(cfg)
        assert code == 0, err
        assert "expired" in err, err
        assert pruned(doc) == ["3"] and deletes(dst) == 1


async def test_prune_to_a_ghcr_profile_target_is_a_config_error(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        await seed(src.url, REPO, ["1"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host, dst_profile="ghcr")
        src.reset_stats()
        code, out, err = await cli("sync", "-c", str(cfg))
        assert code == 3, out + err
        [line] = err.strip().splitlines()
        assert "mappings[0]" in line and "prune" in line and "GHCR" in line and "'dst'" in line, line
        assert "Traceback" not in err
        assert sum(dst.stats()["by_kind"].values()) == 0 and sum(src.stats()["by_kind"].values()) == 0
        # ocync validate says the same, without the network
        code, out, err = await cli("validate", str(cfg))
        assert code == 3 and err.strip().splitlines() == [line], out + err


async def test_watch_prunes_each_run_as_sync_does(tmp_path: Path) -> None:
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        digests = await seed(src.url, REPO, ["1", "2", "3"])
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host)
        code, out, err = await cli("watch", "-c", str(cfg), "--max-runs", "1")
        assert code == 0 and deletes(dst) == 0, out + err
        await untag(src.url, REPO, "3")
        code, out, err = await cli("watch", "-c", str(cfg), "--max-runs", "1")
        assert code == 0, out + err
        assert f"pruned dst/{MIRROR}:3 {digests['3'][:19]}" in out, out
        assert deletes(dst) == 1 and await target_tags(dst.url, MIRROR) == {"1", "2"}


async def test_prune_into_an_oci_layout_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "ocync.yaml"
    cfg.write_text(
        "registries:\n"
        "  src: {url: 127.0.0.1:1}\n"
        f"  disk: {{type: oci-layout, path: {tmp_path / 'layout'}}}\n"
        "defaults: {source: src, targets: disk}\n"
        f"mappings:\n  - {{from: {REPO}, to: {MIRROR}, prune: true}}\n"
    )
    for command in (("validate", str(cfg)), ("sync", "-c", str(cfg))):
        code, out, err = await cli(*command)
        assert code == 3, out + err
        [line] = err.strip().splitlines()
        assert "mappings[0]" in line and "OCI layout" in line and "'disk'" in line, line
    assert not (tmp_path / "layout").exists()
