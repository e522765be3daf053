"""Pruning into Debian's docker-registry (distribution 2.8), through the real CLI: it cannot
delete a tag alone (``DELETE .../manifests/<tag>`` answers 400 DIGEST_INVALID), so ocync deletes
by digest, never a digest another target tag still points at; with deletes disabled
(REGISTRY_STORAGE_DELETE_ENABLED unset: 405 UNSUPPORTED) the mapping fails with one clear line.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import httpx

from mockregistry import MockOptions, serve_mock
from ocync.registry.auth import AuthSettings
from ocync.registry.client import ClientSettings, RegistryClient
from tests.conftest import distribution_process

sys.path.insert(0, str(Path(__file__).parent))
from imageseed import make_image, push_image  # noqa: E402
from test_prune import MIRROR, REPO, pruned, seed, sync_json, untag, write_config  # noqa: E402


async def seed_alias(url: str) -> str:
    """``1`` and ``1-alias`` on the same manifest at the source; its digest."""
    image = make_image(random.Random(77), "1", layers=1, layer_size=256)
    async with RegistryClient(url, ClientSettings(auth=AuthSettings(kind="anonymous"))) as client:
        digest = await push_image(client, REPO, image)
        await client.put_manifest(REPO, "1-alias", image.manifest, image.media_type)
    return str(digest)


async def head(url: str, repo: str, ref: str) -> int:
    accept = "application/vnd.oci.image.manifest.v1+json"
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})).status_code


async def test_distribution_deletes_by_digest_and_spares_a_shared_digest(tmp_path: Path) -> None:
    with distribution_process(tmp_path / "distribution") as dist:
        async with serve_mock(MockOptions(seed=1)) as src:
            shared = await seed_alias(src.url)
            digests = await seed(src.url, REPO, ["2", "3", "4", "5"])
            cfg = write_config(tmp_path / "ocync.yaml", src.host, dist.host)
            code, doc, err = await sync_json(cfg)
            assert code == 0, err
            await untag(src.url, REPO, "1", "2")
            code, doc, err = await sync_json(cfg)
            assert code == 0, err
            assert pruned(doc) == ["2"]
            [skipped] = [p for p in doc["prune"] if p["action"] == "skipped"]
            assert skipped["tag"] == "1" and skipped["digest"] == shared
            assert "also tagged 1-alias" in skipped["reason"] and "by digest" in skipped["reason"]
            # one DELETE by tag (400 DIGEST_INVALID: distribution 2.8 deletes by digest only),
            # then one by digest
            assert doc["summary"]["requests_by_kind"]["manifest_delete"] == 2
            assert await head(dist.url, MIRROR, digests["2"]) == 404
            assert await head(dist.url, MIRROR, "2") == 404
            for tag in ("1", "1-alias", "3", "4", "5"):
                assert await head(dist.url, MIRROR, tag) == 200, tag


async def test_distribution_with_deletes_disabled_is_a_clear_error(tmp_path: Path) -> None:
    with distribution_process(tmp_path / "distribution", delete_enabled=False) as dist:
        async with serve_mock(MockOptions(seed=1)) as src:
            await seed(src.url, REPO, ["1", "2", "3"])
            cfg = write_config(tmp_path / "ocync.yaml", src.host, dist.host)
            assert (await sync_json(cfg))[0] == 0
            await untag(src.url, REPO, "3")
            code, doc, err = await sync_json(cfg)
            assert code == 1, err
            assert "does not allow deleting manifests" in err and "REGISTRY_STORAGE_DELETE_ENABLED" in err
            assert "Traceback" not in err
            assert pruned(doc, "failed") == ["3"] and pruned(doc) == []
            assert await head(dist.url, MIRROR, "3") == 200
