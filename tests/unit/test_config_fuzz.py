"""Hypothesis: any text raises only ConfigError (never a traceback); expand round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.config import dump_yaml, expanded_data, parse_config_text
from ocync.errors import ConfigError

FRAGMENTS = [
    "registries:\n", "  hub: {url: docker.io}\n", "  g:\n    url: ghcr.io\n", "    token: ${T}\n",
    "mappings:\n", "  - from: a/b\n", "    tags: {latest: 3}\n", "    targets: [g, x]\n",
    "defaults: {source: hub, targets: g}\n", "global: {cache_ttl: 1h}\n", "  - ", "{", "}",
    "[", "]", ": ", "&a ", "*a ", "<<: *a\n", "? ", "!!python/object:os.system x\n", "\t",
    "    ", "\n", "- ", "x: !!binary aGk=\n", "1: 2\n", "null\n", "~\n", "'", '"', "${",
    "target_groups: {all: [g]}\n", "  platforms: []\n", "---\n", "%YAML 1.1\n", "\x00", "é",
]

SETTINGS = settings(max_examples=400, deadline=None)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14))
def test_fragments_raise_only_config_error(pieces: list[str]) -> None:
    try:
        parse_config_text("".join(pieces), "f.yaml", {"T": "s3cr3tT0k"})
    except ConfigError as exc:
        for line in str(exc).splitlines():
            assert line.startswith("f.yaml:"), line
            assert "s3cr3tT0k" not in line


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_raises_only_config_error(text: str) -> None:
    try:
        parse_config_text(text, "f.yaml", {})
    except ConfigError:
        pass


names = st.sampled_from(["hub", "ghcr", "quay", "local"])
repos = st.sampled_from(["a/b", "library/nginx", "org/app-1", "x"])
patterns = st.lists(st.sampled_from(["*", "1.*", "v?", "*-rc*", "latest", "$x"]), max_size=2)


@st.composite
def configs(draw: st.DrawFn) -> str:
    lines = ["registries:"]
    lines += [f"  {n}: {{url: {n}.example.com, max_concurrent: {draw(st.integers(1, 9))}}}"
              for n in ("hub", "ghcr", "quay", "local")]
    lines += ["defaults:", "  source: hub", "  targets: [ghcr]",
              f"  tags: {{exclude: {draw(patterns)}, sort: semver, latest: {draw(st.integers(1, 5))}}}"]
    lines.append(f"global: {{cache_ttl: {draw(st.sampled_from(['90s', '2h', '1d', 3600]))}, "
                 f"staging_size_limit: {draw(st.sampled_from(['1GiB', '500MB', 1000]))}}}")
    lines.append("mappings:")
    for _ in range(draw(st.integers(1, 3))):
        lines.append(f"  - from: {draw(repos)}")
        lines.append(f"    to: mirror/{draw(repos)}")
        if draw(st.booleans()):
            lines.append(f"    targets: [{draw(st.sampled_from(['quay', 'local']))}]")
        if draw(st.booleans()):
            lines.append(f"    tags: {{glob: {draw(patterns)}, include: {draw(patterns)}}}")
        if draw(st.booleans()):
            lines.append("    platforms: [linux/amd64, linux/arm/v7]")
        if draw(st.booleans()):
            lines.append(f"    artifacts: {{enabled: {str(draw(st.booleans())).lower()}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=100, deadline=None)
@given(configs())
def test_expand_round_trip(text: str) -> None:
    try:
        loaded = parse_config_text(text, "gen.yaml", {})
    except ConfigError as exc:  # generated patterns may be invalid ("$x"): only ours
        assert "gen.yaml:" in str(exc)
        return
    again = parse_config_text(dump_yaml(expanded_data(loaded)), "out.yaml", {})
    assert again.config == loaded.config
    assert again.config.resolve() == loaded.config.resolve()


@pytest.mark.parametrize("text", ["!!python/object/apply:os.system [echo hi]\n",
                                  "a: !!python/name:os.system\n"])
def test_unsafe_tags_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config_text(text, "f.yaml", {})
