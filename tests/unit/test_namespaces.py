"""Expansion of pattern mappings (ocync.engine.namespaces): concrete mappings, the shard key
shared with literal mappings, and which mapping writes a contested target repository."""

from __future__ import annotations

import pytest

from ocync.config import parse_config_text
from ocync.engine.discovery import MappingSpec, TargetRepo
from ocync.engine.namespaces import TargetClaims, expand_spec, spec_key
from ocync.engine.sharding import resolved_key
from ocync.engine.syncrun import mapping_specs

CONFIG = """
registries:
  src: {url: src.example.com}
  dst: {url: dst.example.com}
  dst2: {url: dst2.example.com}
defaults: {source: src, targets: [dst, dst2]}
mappings:
  - {from: 'team/**', to: 'mirror/*', exclude: ['team/old-*']}
  - {from: team/sub/app, to: mirror/sub/app}
"""
HOSTS = {"src": "src.example.com", "dst": "dst.example.com", "dst2": "dst2.example.com"}


def _specs() -> tuple[MappingSpec, MappingSpec]:
    resolved = parse_config_text(CONFIG).config.resolve()
    pattern, literal = mapping_specs(resolved)
    return pattern, literal


@pytest.mark.parametrize(
    ("repo", "targets"),
    [
        pytest.param("team/app", ("mirror/app", "mirror/app"), id="one-level"),
        pytest.param("team/sub/app", ("mirror/sub/app", "mirror/sub/app"), id="deep"),
        pytest.param("team/old-app", None, id="excluded"),
        pytest.param("other/app", None, id="outside"),
    ],
)
def test_expand_spec(repo: str, targets: tuple[str, ...] | None) -> None:
    pattern, _ = _specs()
    concrete = expand_spec(pattern, repo)
    if targets is None:
        assert concrete is None
        return
    assert concrete is not None
    assert concrete.source_repo == repo and concrete.source_pattern is None
    assert tuple(t.repo for t in concrete.targets) == targets
    assert concrete.name.endswith(f"[{repo}]")
    assert concrete.tag_filter == pattern.tag_filter


def test_expanded_repository_shards_like_the_same_literal_mapping() -> None:
    """--shard keeps team/sub/app on the same shard whether a pattern or a literal names it."""
    resolved = parse_config_text(CONFIG).config.resolve()
    pattern, _ = mapping_specs(resolved)
    concrete = expand_spec(pattern, "team/sub/app")
    assert concrete is not None
    assert spec_key(concrete, HOSTS) == resolved_key(resolved[1])


def test_literal_mapping_wins_its_targets() -> None:
    pattern, literal = _specs()
    claims = TargetClaims([literal], HOSTS)
    concrete = expand_spec(pattern, "team/sub/app")
    assert concrete is not None
    kept, warnings = claims.claim(concrete)
    assert kept is None  # both targets are the literal mapping's
    assert len(warnings) == 2 and all(literal.name in w for w in warnings)
    other = expand_spec(pattern, "team/app")
    assert other is not None
    assert claims.claim(other) == (other, [])


def test_first_expansion_wins_and_keeps_its_other_targets() -> None:
    claims = TargetClaims([], HOSTS)
    first = MappingSpec("first", "src", "a/x", (TargetRepo("dst", "m/x"),))
    assert claims.claim(first) == (first, [])
    second = MappingSpec("second", "src", "team/x", (TargetRepo("dst", "m/x"), TargetRepo("dst2", "m/x")))
    kept, warnings = claims.claim(second)
    assert kept is not None and kept.targets == (TargetRepo("dst2", "m/x"),)
    assert warnings == ["second: skipped dst/m/x, which first writes"]
