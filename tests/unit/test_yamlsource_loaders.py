"""The config is composed by libyaml when it is there (10x faster at 10,000 mappings,
stress/scale.py), with the same data and lines as the pure-Python loader; anything libyaml
refuses is composed again by the pure loader so the error lines stay the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ocync.config import yamlsource
from ocync.errors import ConfigError

INVALID = sorted((Path(__file__).parent / "invalid_configs").glob("*.yaml"))

CONFIG = """\
global:
  cache_dir: /tmp/c   # a comment
registries:
  src: {url: "src.example.com"}
  dst:
    url: dst.example.com
    verify: always
defaults: &d
  source: src
  targets: [dst]
mappings:
""" + "".join(f"  - {{from: corpus/repo{i}, to: mirror/repo{i}}}\n" for i in range(50)) + """\
  - from: library/alpine
    <<: *d
    tags: {glob: ["3.*"], latest: 2, sort: semver}
"""


def _pure(text: str) -> yamlsource.Document:
    return yamlsource._compose(text, "c.yaml", yaml.SafeLoader)


def test_libyaml_is_used_here() -> None:
    # this machine's PyYAML is built with libyaml (.ci/run installs the same wheel)
    assert yamlsource._FAST_LOADER is yaml.CSafeLoader


def test_both_loaders_compose_the_same_document() -> None:
    fast, pure = yamlsource.compose(CONFIG, "c.yaml"), _pure(CONFIG)
    assert fast.data == pure.data
    assert fast.lines == pure.lines
    assert fast.problems == pure.problems
    assert fast.nodes == pure.nodes


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: 1\na: 2\n", id="duplicate-key"),
        pytest.param("a: [1, 2\n", id="unclosed-flow"),
        pytest.param("a: !!python/object:os.system x\n", id="unknown-tag"),
        pytest.param("a: \x07\n", id="control-character"),
        pytest.param("a: '\ud800'\n", id="lone-surrogate"),
        pytest.param("", id="empty"),
    ],
)
def test_refused_yaml_reports_what_the_pure_loader_reports(text: str) -> None:
    try:
        expected: object = _pure(text).problems
    except ConfigError as exc:
        expected = str(exc)
    try:
        got: object = yamlsource.compose(text, "c.yaml").problems
    except ConfigError as exc:
        got = str(exc)
    assert got == expected


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_configs_compose_alike(path: Path) -> None:
    text = path.read_text(errors="surrogateescape")
    try:
        expected: object = _pure(text)
    except ConfigError as exc:
        expected = str(exc)
    try:
        got: object = yamlsource.compose(text, "c.yaml")
    except ConfigError as exc:
        got = str(exc)
    if isinstance(expected, yamlsource.Document) and isinstance(got, yamlsource.Document):
        assert (got.data, got.lines, got.problems) == (expected.data, expected.lines, expected.problems)
    else:
        assert got == expected
