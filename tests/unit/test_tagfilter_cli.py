"""`ocync tags` offline (--tags-from): flags, config-derived filters, rendering, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocync.cli.main import main
from ocync.cli.tags_cmd import render_text
from ocync.oci.tagfilter import TagFilter, apply_filter

TAGS = ["latest", "1.0", "1.1", "1.2-rc1", "1.10", "2.0", "2.1-alpine", "edge"]


@pytest.fixture
def listing(tmp_path: Path) -> Path:
    path = tmp_path / "tags.txt"
    path.write_text("# listed\n" + "\n".join(TAGS) + "\n\n")
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param([], ["latest", "1.0", "1.1", "1.10", "2.0", "2.1-alpine", "edge"], id="all"),
        pytest.param(["--glob", "1.*", "--glob", "2.*"], ["1.0", "1.1", "1.10", "2.0",
                                                          "2.1-alpine"], id="globs"),
        pytest.param(["--semver", ">=1.1, <2"], ["1.1", "1.10"], id="semver"),
        pytest.param(["--sort", "semver", "--latest", "2"], ["2.0", "2.1-alpine"], id="latest"),
        pytest.param(["--sort", "alpha", "--latest", "1", "--include", "edge"],
                     ["edge", "latest"], id="alpha-and-literal"),
        pytest.param(["--exclude", "*-alpine", "--exclude", "edge", "--include", "edge"],
                     ["latest", "1.0", "1.1", "1.10", "2.0"], id="hard-exclude-wins"),
        pytest.param(["--include", "*-rc*", "--glob", "none"], ["1.2-rc1"], id="glob-rescue"),
        pytest.param(["--no-builtin-excludes", "--glob", "1.*"], ["1.0", "1.1", "1.2-rc1",
                                                                  "1.10"], id="builtin-off"),
    ],
)
def test_tags_quiet(flags: list[str], expected: list[str], listing: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["tags", "ghcr.io/org/app", "--tags-from", str(listing), "-q", *flags],
                        capsys)
    assert code == 0
    assert out.split() == expected


def test_tags_text_shows_stages(listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["tags", "ghcr.io/org/app", "--tags-from", str(listing), "--semver",
                         ">=1.0", "--sort", "semver", "--latest", "2"], capsys)
    assert code == 0
    assert out.startswith("ghcr.io/org/app: 8 tag(s) listed, 2 selected\n")
    assert "dropped 2: latest, edge" in out
    assert "dropped 1: 1.2-rc1" in out
    assert out.rstrip().endswith("selected: 2.0 2.1-alpine")


def test_tags_json(listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["tags", "docker.io/library/nginx", "--tags-from", str(listing),
                         "--json", "--include", "9.9"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["repository"] == "docker.io/library/nginx"
    assert data["literal_added"] == ["9.9"] and data["tags"][-1] == "9.9"
    assert data["filter"]["include"] == ["9.9"]
    assert [s["name"] for s in data["stages"]][:3] == ["input", "glob", "exclude (soft)"]


def test_render_truncates_without_verbose() -> None:
    tags = [f"x{i}" for i in range(20)]
    sel = apply_filter(TagFilter(glob=("none",)), tags)
    assert "(+12 more)" in render_text("r", sel)
    assert "(+" not in render_text("r", sel, verbose=1)


def test_min_tags_failure_exit_2(listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["tags", "ghcr.io/org/app", "--tags-from", str(listing), "--glob",
                         "1.*", "--min-tags", "5"], capsys)
    assert code == 2
    assert "only 3 tag(s) left after filtering, min_tags is 5" in err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        pytest.param(["--latest", "2"], "--latest needs --sort", id="latest-no-sort"),
        pytest.param(["--semver", "~1"], "--semver: invalid semver range", id="bad-semver"),
        pytest.param(["--sort", "version"], "invalid choice", id="bad-sort"),
        pytest.param(["--latest", "0", "--sort", "alpha"], "--latest must be at least 1",
                     id="latest-zero"),
    ],
)
def test_bad_flags_exit_3(flags: list[str], needle: str, listing: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code, _, err = _run(["tags", "ghcr.io/org/app", "--tags-from", str(listing), *flags],
                            capsys)
    except SystemExit as exc:  # argparse errors exit through parser.exit
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == 3
    assert needle in err and "Traceback" not in err


def test_bad_repository_exit_3(listing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["tags", "ghcr.io/Org/App", "--tags-from", str(listing)], capsys)
    assert code == 3 and "ocync: error:" in err


def test_config_mapping_filter_is_the_base(listing: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "registries: {gh: {url: ghcr.io}, q: {url: quay.io}}\n"
        "defaults: {source: gh, targets: q, tags: {exclude: [edge]}}\n"
        "mappings:\n  - from: org/app\n    tags: {sort: semver, latest: 3, exclude: ['*-alpine']}\n"
    )
    code, out, _ = _run(["tags", "ghcr.io/org/app", "-c", str(cfg), "--tags-from",
                         str(listing), "-q"], capsys)
    assert code == 0 and out.split() == ["1.1", "1.10", "2.0"]
    # flags override the mapping's fields one by one
    code, out, _ = _run(["tags", "ghcr.io/org/app", "-c", str(cfg), "--tags-from",
                         str(listing), "-q", "--latest", "1"], capsys)
    assert out.split() == ["2.0"]
    # another repository gets the defaults (soft exclude of edge)
    code, out, _ = _run(["tags", "ghcr.io/org/other", "-c", str(cfg), "--tags-from",
                         str(listing), "-q"], capsys)
    assert "edge" not in out.split() and "2.1-alpine" in out.split()


def test_config_without_a_matching_mapping_says_so(listing: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Falling back to the defaults is announced on stderr (stdout stays the tag list)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "registries: {gh: {url: ghcr.io}, q: {url: quay.io}}\n"
        "defaults: {source: gh, targets: q, tags: {exclude: [edge]}}\n"
        "mappings:\n  - from: org/app\n    tags: {sort: semver, latest: 3}\n"
    )
    code, out, err = _run(["tags", "ghcr.io/org/other", "-c", str(cfg), "--tags-from",
                           str(listing), "-q"], capsys)
    assert code == 0 and "edge" not in out.split() and "ocync" not in out
    assert err == (f"ocync: warning: ghcr.io/org/other is not the `from` of any mapping in {cfg}: "
                   "using the defaults' tag filter\n")
    code, out, err = _run(["tags", "docker.io/org/app", "-c", str(cfg), "--tags-from",
                           str(listing), "--json"], capsys)
    assert code == 0 and json.loads(out)["repository"] == "docker.io/org/app"
    assert "docker.io/org/app is not the `from` of any mapping" in err
    assert "no registry in it serves docker.io" in err
    # a repository that is a mapping's source: no warning
    code, _, err = _run(["tags", "ghcr.io/org/app", "-c", str(cfg), "--tags-from", str(listing)],
                        capsys)
    assert code == 0 and err == ""


def test_invalid_config_one_line_per_problem(listing: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("registries: {gh: {url: ghcr.io, tokn: x}}\nmappings: [{from: a, sort: x}]\n")
    code, _, err = _run(["tags", "ghcr.io/org/app", "-c", str(cfg), "--tags-from", str(listing)],
                        capsys)
    assert code == 3
    lines = err.splitlines()
    assert len(lines) == 2 and all(ln.startswith(f"ocync: error: {cfg}:") for ln in lines)
    assert "did you mean `token`?" in lines[0] and "mappings[0].sort" in lines[1]
