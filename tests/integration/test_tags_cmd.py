"""`ocync tags` against the in-process mock registry: Link pagination, auth from -c CONFIG."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import trio

from mockregistry import MockOptions, serve_mock
from mockregistry.store import ManifestRecord
from ocync.cli.tags_cmd import fetch_tags
from ocync.config import parse_config_text
from ocync.oci.tagfilter import TagFilter, apply_filter

TAGS = ["1.0", "1.1", "1.2-rc1", "1.10", "2.0", "2.1-alpine", "latest", "edge", "v3.0-beta"]
MEDIA = "application/vnd.oci.image.manifest.v1+json"


def _seed(store: object, repo: str, tags: list[str]) -> None:
    for tag in tags:
        body = json.dumps({"schemaVersion": 2, "mediaType": MEDIA, "tag": tag}).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        record = ManifestRecord(digest=digest, media_type=MEDIA, size=len(body))
        store.put_manifest(repo, record, body, tag)  # type: ignore[attr-defined]


async def test_fetch_tags_follows_pagination() -> None:
    async with serve_mock(MockOptions(profile="generic", tags_page_size=2, seed=1)) as mock:
        _seed(mock.store, "org/app", TAGS)
        tags = await fetch_tags(mock.host, "org/app")
        assert sorted(tags) == sorted(TAGS)
        assert mock.stats()["by_kind"]["tags_list"] >= 5  # 9 tags, 2 per page
        selection = apply_filter(TagFilter(sort="semver", latest=2), tags)
        assert selection.tags == ("2.0", "2.1-alpine")


async def test_cli_tags_with_config_credentials(tmp_path: Path) -> None:
    options = MockOptions(profile="ghcr", auth="token", users={"alice": "pat-alice"},
                          public=[], rate_limit="off", blob_redirect=False, seed=2)
    async with serve_mock(options) as mock:
        _seed(mock.store, "alice/app", TAGS)
        cfg = tmp_path / "ocync.yaml"
        cfg.write_text(
            "registries:\n"
            f"  mock: {{url: '{mock.host}', profile: ghcr,"
            " credentials: {username: alice, password: '${MOCK_PAT}'}}\n"
            "defaults:\n  source: mock\n  targets: mock\n"
            "  tags: {exclude: ['edge']}\n"
            "mappings:\n  - from: alice/app\n    to: alice/copy\n"
            "    tags: {sort: semver, latest: 3, include: [latest]}\n"
        )
        # the config the command will load is valid and resolves to the mock
        (m,) = parse_config_text(cfg.read_text(), environ={"MOCK_PAT": "pat-alice"}).config.resolve()
        assert m.source.base_url == mock.url
        env = {**os.environ, "MOCK_PAT": "pat-alice"}
        proc = await trio.run_process(
            [sys.executable, "-m", "ocync", "tags", f"{mock.host}/alice/app", "-c", str(cfg),
             "--json"],
            capture_stdout=True, capture_stderr=True, env=env, check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        out = json.loads(proc.stdout)
        assert out["tags"] == ["latest", "1.10", "2.0", "2.1-alpine"]
        stages = {s["name"]: s for s in out["stages"]}
        assert stages["exclude (soft)"]["dropped"] == ["1.2-rc1", "edge", "v3.0-beta"]
        assert "pat-alice" not in proc.stdout.decode() + proc.stderr.decode()
        assert mock.stats()["auth_leaks"] == 0
        # without credentials the private repository is refused: exit 4, one line
        proc = await trio.run_process(
            [sys.executable, "-m", "ocync", "tags", f"{mock.host}/alice/app"],
            capture_stdout=True, capture_stderr=True, check=False,
        )
        assert proc.returncode == 4, proc.stderr.decode()
        assert "Traceback" not in proc.stderr.decode()
