"""Digest-pinned sources (``digests:``, digests in ``tags.include``) as real ``ocync``
processes against two mocks: what lands at the target (by digest, and under ``tag_template``),
the wire counts of a cold run (the source asked once per pinned manifest) and of a warm one
(no request at all beyond each registry's ``GET /v2/``), an index pinned whole with its
children, referrers copied with a pin, and a digest the source does not have failing that
image (exit 1) by name."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx

from mockregistry import MockOptions, serve_mock
from stress.corpus import Manifest
from tests.integration.imageseed import make_image, make_index
from tests.integration.referrerseed import artifact, push_referrer
from tests.integration.test_sync_catalog import ocync, seed, target_digest, write_config

MISSING = "sha256:" + "e" * 64


async def by_kind(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{url}/_mock/stats")
        response.raise_for_status()
        return {k: n for k, n in response.json()["by_kind"].items() if n}


async def test_pins_cold_and_warm_at_the_wire(tmp_path: Path) -> None:
    rng = random.Random(4)
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        image = make_image(rng, "v1", layers=2, layer_size=256)
        index = make_index(rng, "multi", layers=1, layer_size=128)
        one = seed(src.store, "app", image)
        for child in index.children:
            for digest, data in child.blobs.items():
                src.store.put_content(str(digest), data)
                src.store.link_blob("app", str(digest))
            seed(src.store, "app", child)  # children tagged too, as in any registry: harmless
        idx = seed(src.store, "app", index)
        cfg = write_config(
            tmp_path / "ocync.yaml", src.host, dst.host,
            f"  - {{from: app, to: pinned, digests: ['{one}', '{idx}'], tag_template: 'pin-{{hex12}}',"
            " artifacts: {enabled: false}}\n",
        )
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        report = json.loads(out)
        assert sorted(r["status"] for r in report["images"]) == ["synced", "synced"]
        # by digest, and under the template's tag
        for digest in (one, idx):
            assert target_digest(dst.store, "pinned", digest) == digest
            assert target_digest(dst.store, "pinned", f"pin-{digest[7:19]}") == digest
        for child in index.children:
            assert target_digest(dst.store, "pinned", str(child.digest)) == str(child.digest)
        # Cold: each pinned manifest GET once by digest (no tag list, no HEAD), the index's
        # two children by digest; a HEAD per pin at the target, then blobs and manifests.
        src_cold = await by_kind(src.url)
        assert src_cold == {"ping": 1, "manifest_get": 4, "blob_get": 7}, src_cold  # 3 + 2 x 2 blobs
        dst_cold = await by_kind(dst.url)
        assert dst_cold["manifest_head"] == 2 and dst_cold["manifest_put"] == 4, dst_cold
        assert "tags_list" not in dst_cold

        src.reset_stats()
        dst.reset_stats()
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        assert sorted(r["status"] for r in json.loads(out)["images"]) == ["skipped", "skipped"]
        # Warm: a digest is immutable and the cache knows it is there: nothing is asked.
        assert await by_kind(src.url) == {"ping": 1}
        assert await by_kind(dst.url) == {"ping": 1}


async def test_pin_without_template_is_pushed_by_digest_only(tmp_path: Path) -> None:
    rng = random.Random(5)
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        digest = seed(src.store, "app", make_image(rng, "v1", layers=1, layer_size=64))
        seed(src.store, "app", make_image(rng, "v2", layers=1, layer_size=64))
        # a digest in tags.include with glob: [] is a pin too; v2 is not selected
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host,
                           f"  - {{from: app, tags: {{glob: [], include: ['{digest}']}}}}\n")
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        assert target_digest(dst.store, "app", digest) == digest
        repo = dst.store.repo("app")
        assert repo is not None and not repo.tags  # nothing tagged: neither v1, v2 nor a pin tag
        src_cold = await by_kind(src.url)
        assert src_cold.get("tags_list") is None and src_cold["manifest_get"] == 1, src_cold
        # --dry-run names the pin
        code, out, err = await ocync("sync", "-c", str(cfg), "--dry-run", "--no-cache")
        assert code == 0, err
        assert "up to date: 1 tag(s)" in out


async def test_missing_digest_fails_that_image_by_name(tmp_path: Path) -> None:
    rng = random.Random(6)
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        digest = seed(src.store, "app", make_image(rng, "v1", layers=1, layer_size=64))
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host,
                           f"  - {{from: app, digests: ['{digest}', '{MISSING}']}}\n")
        code, out, err = await ocync("sync", "-c", str(cfg))
        assert code == 1, (out, err)
        assert "Traceback" not in err
        (line,) = [x for x in err.splitlines() if x.startswith("ocync: error:")]
        assert f"src/app@{MISSING}" in line, line
        assert target_digest(dst.store, "app", digest) == digest


async def test_pinned_index_is_copied_whole_despite_defaults_platforms(tmp_path: Path) -> None:
    """A pin names one digest: ``defaults.platforms`` (which trims the tags' indexes to a new
    digest) does not apply to it; the mapping's own ``platforms`` with pins is refused (exit
    3, tests/unit/invalid_configs/digest-pin-with-platforms.yaml)."""
    rng = random.Random(8)
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(seed=2)) as dst:
        index = make_index(rng, "multi", layers=1, layer_size=64)
        for child in index.children:
            seed(src.store, "app", child)
        idx = seed(src.store, "app", index)
        cfg = tmp_path / "ocync.yaml"
        cfg.write_text(
            f"global: {{cache_dir: {tmp_path / 'cache'}}}\n"
            f"registries:\n  src: {{url: '{src.host}'}}\n  dst: {{url: '{dst.host}'}}\n"
            "defaults: {source: src, targets: dst, platforms: [linux/amd64]}\n"
            f"mappings:\n  - {{from: app, digests: ['{idx}']}}\n"
        )
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        assert target_digest(dst.store, "app", idx) == idx
        for child in index.children:  # both platforms: the index as pinned
            assert target_digest(dst.store, "app", str(child.digest)) == str(child.digest)


async def test_pin_brings_its_referrers(tmp_path: Path) -> None:
    """The same referrers handling as tags: a signature of the pinned image arrives with it
    (the mock's referrers API at the source; GHCR-like target without one gets the
    distribution-spec tag-schema index)."""
    rng = random.Random(9)
    async with serve_mock(MockOptions(seed=1)) as src, serve_mock(MockOptions(profile="ghcr", seed=2)) as dst:
        image = make_image(rng, "v1", layers=1, layer_size=64)
        digest = seed(src.store, "org/app", image)
        subject = Manifest(digest, image.media_type, image.manifest)
        signature = artifact(subject, "application/vnd.example.signature+json", "release-bot")
        await push_referrer(src.url, "org/app", subject, signature, None, signature[1].descriptor())
        cfg = write_config(tmp_path / "ocync.yaml", src.host, dst.host,
                           f"  - {{from: org/app, to: org/pinned, digests: ['{digest}']}}\n")
        code, out, err = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, err
        assert target_digest(dst.store, "org/pinned", digest) == digest
        assert target_digest(dst.store, "org/pinned", signature[1].digest) == signature[1].digest
        fallback = dst.store.resolve("org/pinned", "sha256-" + digest.removeprefix("sha256:"))
        assert fallback is not None  # the referrers tag-schema index, not overwritten by a pin tag
