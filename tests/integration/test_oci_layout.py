"""OCI image layouts as a sync target and source, through the real ``ocync`` CLI, with
skopeo as the independent reader and writer of layouts and docker-registry as the registry
skopeo copies to and from."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from mockregistry import MockOptions, serve_mock
from stress.corpus import CorpusSpec, build_corpus, push_corpus, verify_corpus
from tests.integration.layoutsupport import (
    export_config,
    import_config,
    layout_problems,
    ocync,
    ref_names,
)

pytestmark = pytest.mark.real_registry


async def test_skopeo_reads_the_layout_ocync_writes(
    tmp_path: Path, skopeo: str, distribution: Any
) -> None:
    corpus = build_corpus(CorpusSpec(seed=31, repositories=2, tags_per_repo=2, shared_base_layers=1))
    repos = sorted(corpus.repos)
    layout = tmp_path / "mirror"
    async with serve_mock(MockOptions(profile="generic")) as src:
        await push_corpus(corpus, src.url)
        cfg = export_config(tmp_path / "export.yaml", src.host, layout, tmp_path / "cache", repos)
        code, out = await ocync("sync", "-c", str(cfg))
        assert code == 0, out
    assert layout_problems(layout) == []
    assert ref_names(layout) == sorted(f"{r}:{t}" for r in repos for t in corpus.repos[r])
    for repo, tags in corpus.repos.items():
        for tag in tags:
            code, out = await _run(
                skopeo, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:{repo}:{tag}",
                f"docker://{distribution.url.split('://', 1)[1]}/{repo}:{tag}",
            )
            assert code == 0, out
    assert await verify_corpus(corpus, distribution.url) == []


TOKEN = "pat-alice"
GHCR_DST = "    credentials: {username: alice, password: pat-alice}\n    profile: ghcr\n"


def ghcr_mock() -> MockOptions:
    return MockOptions(profile="ghcr", auth="token", users={"alice": TOKEN},
                       user_namespaces={"alice": ["mirror"]})


async def test_ocync_reads_the_layout_skopeo_writes(
    tmp_path: Path, skopeo: str, distribution: Any
) -> None:
    """skopeo's ``oci:DIR:TAG`` writes ref name TAG (the layout's unnamed repository) and
    ``oci:DIR:REPO:TAG`` writes REPO:TAG: ocync reads both."""
    corpus = build_corpus(CorpusSpec(seed=32, repositories=2, tags_per_repo=2, shared_base_layers=1))
    await push_corpus(corpus, distribution.url)
    host = distribution.url.split("://", 1)[1]
    [named_repo, plain_repo] = sorted(corpus.repos)
    named, plain = tmp_path / "named", tmp_path / "plain"
    for tag in corpus.repos[named_repo]:
        code, out = await _run(skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
                               f"docker://{host}/{named_repo}:{tag}", f"oci:{named}:{named_repo}:{tag}")
        assert code == 0, out
    for tag in corpus.repos[plain_repo]:
        code, out = await _run(skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
                               f"docker://{host}/{plain_repo}:{tag}", f"oci:{plain}:{tag}")
        assert code == 0, out
    assert ref_names(plain) == sorted(corpus.repos[plain_repo])
    async with serve_mock(ghcr_mock()) as dst:
        for layout, repo in ((named, named_repo), (plain, plain_repo)):
            to = f"mirror/{repo.split('/', 1)[1]}"
            cfg = import_config(tmp_path / f"import-{layout.name}.yaml", layout, dst.host,
                                tmp_path / "cache", {repo: to}, dst_extra=GHCR_DST)
            code, out = await ocync("sync", "-c", str(cfg))
            assert code == 0, out
        repo_map = {r: f"mirror/{r.split('/', 1)[1]}" for r in corpus.repos}
        assert await verify_corpus(corpus, dst.url, username="alice", password=TOKEN,
                                   repo_map=repo_map, check_blob_bytes=True) == []


async def test_oci_archive_both_ways_with_skopeo(
    tmp_path: Path, skopeo: str, distribution: Any
) -> None:
    """registry -> oci-archive by ocync, read by skopeo; and skopeo's archive read by ocync."""
    corpus = build_corpus(CorpusSpec(seed=33, repositories=1, tags_per_repo=2))
    [repo] = sorted(corpus.repos)
    archive = tmp_path / "mirror.tar"
    async with serve_mock(MockOptions(profile="generic")) as src:
        await push_corpus(corpus, src.url)
        cfg = export_config(tmp_path / "export.yaml", src.host, archive, tmp_path / "cache", [repo],
                            kind="oci-archive")
        code, out = await ocync("sync", "-c", str(cfg))
        assert code == 0, out
    assert archive.is_file() and not [n for n in os.listdir(tmp_path) if ".ocync-work" in n]
    host = distribution.url.split("://", 1)[1]
    for tag in corpus.repos[repo]:
        code, out = await _run(skopeo, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
                               f"oci-archive:{archive}:{repo}:{tag}", f"docker://{host}/{repo}:{tag}")
        assert code == 0, out
    assert await verify_corpus(corpus, distribution.url) == []
    # skopeo writes an archive (ref name = TAG), ocync reads it
    [tag, *_] = sorted(corpus.repos[repo])
    theirs = tmp_path / "theirs.tar"
    code, out = await _run(skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
                           f"docker://{host}/{repo}:{tag}", f"oci-archive:{theirs}:{tag}")
    assert code == 0, out
    async with serve_mock(ghcr_mock()) as dst:
        cfg = import_config(tmp_path / "import.yaml", theirs, dst.host, tmp_path / "cache",
                            {repo: "mirror/app"}, kind="oci-archive", dst_extra=GHCR_DST)
        code, out = await ocync("sync", "-c", str(cfg))
        assert code == 0, out
        want = corpus.repos[repo][tag]
        code, out = await _run(skopeo, "inspect", "--raw", "--tls-verify=false",
                               "--creds", f"alice:{TOKEN}", f"docker://{dst.host}/mirror/app:{tag}")
        assert code == 0, out
        assert "sha256:" + hashlib.sha256(out.encode()).hexdigest() == want


async def _run(*argv: str) -> tuple[int, str]:
    done = await trio.run_process(list(argv), capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def test_one_run_into_a_layout_and_a_registry_stages_each_blob_once(tmp_path: Path) -> None:
    """Two targets (a layout and a registry): the engine stages each blob once (download_blob
    from the source) and both targets get it from the staged file (upload_file)."""
    corpus = build_corpus(CorpusSpec(seed=36, repositories=2, tags_per_repo=2, shared_base_layers=1,
                                     referrers_per_image=1))
    repos = sorted(corpus.repos)
    layout = tmp_path / "mirror"
    async with serve_mock(MockOptions(profile="generic")) as src, serve_mock(MockOptions()) as dst:
        await push_corpus(corpus, src.url)
        src.reset_stats()
        cfg = export_config(tmp_path / "both.yaml", src.host, layout, tmp_path / "cache", repos)
        text = cfg.read_text().replace("  targets: carry\n", "  targets: [carry, dst]\n")
        cfg.write_text(text.replace("registries:\n", f"registries:\n  dst:\n    url: {dst.host}\n", 1))
        code, out = await ocync("sync", "-c", str(cfg))
        assert code == 0, out
        assert src.stats()["by_kind"]["blob_get"] == len(corpus.blobs)
        assert await verify_corpus(corpus, dst.url, check_blob_bytes=True) == []
    assert layout_problems(layout) == []
    assert ref_names(layout) == sorted(
        {f"{r}:{t}" for r in repos for t in corpus.repos[r]}
        | {f"{i.repo}:sha256-{i.digest.split(':', 1)[1]}" for i in corpus.images if i.referrers}
    )


async def test_damaged_and_truncated_bodies_never_land_in_blobs(tmp_path: Path) -> None:
    """The source damages the first body of every blob (and truncates some): each blob is
    verified as it is written, the damaged copy is discarded and fetched again, and blobs/
    holds only files that hash to their names."""
    corpus = build_corpus(CorpusSpec(seed=38, repositories=2, tags_per_repo=2, shared_base_layers=1))
    repos = sorted(corpus.repos)
    layout = tmp_path / "mirror"
    async with serve_mock(MockOptions(profile="generic", corrupt_first=1, truncate_rate=0.1, seed=5)) as src:
        await push_corpus(corpus, src.url)
        src.reset_stats()
        cfg = export_config(tmp_path / "export.yaml", src.host, layout, tmp_path / "cache", repos)
        code, out = await ocync("sync", "-c", str(cfg), "--json")
        assert code == 0, out
        gets = src.stats()["by_kind"]["blob_get"]
    assert gets >= 2 * len(corpus.blobs)  # every blob's first body was damaged: fetched again
    assert layout_problems(layout) == []
    assert not (layout / ".ocync-tmp").exists() or os.listdir(layout / ".ocync-tmp") == []
    assert ref_names(layout) == sorted(f"{r}:{t}" for r in repos for t in corpus.repos[r])
