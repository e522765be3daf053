"""A config with thousands of mappings is checked in linear work: the pairwise overlap check
between mappings only compares mappings that write the same target repository (counted by
wrapping the comparison, never timed)."""

from __future__ import annotations

import pytest

from ocync.config import crosscheck
from ocync.config.load import parse_config_text
from ocync.errors import ConfigError
from ocync.oci.tagfilter import TagFilter

MAPPINGS = 3000


def _config(extra: str = "") -> str:
    head = (
        "registries:\n  src: {url: src.example.com}\n  dst: {url: dst.example.com}\n"
        "defaults: {source: src, targets: [dst]}\nmappings:\n"
    )
    body = "".join(f"  - {{from: corpus/repo{i}, to: mirror/repo{i}}}\n" for i in range(MAPPINGS))
    return head + body + extra


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = crosscheck.selections_may_overlap

    def counted(a: TagFilter, b: TagFilter) -> bool:
        calls[0] += 1
        return real(a, b)

    monkeypatch.setattr(crosscheck, "selections_may_overlap", counted)
    return calls


def test_distinct_targets_are_never_compared(comparisons: list[int]) -> None:
    loaded = parse_config_text(_config(), "big.yaml", environ={})
    assert len(loaded.config.mappings) == MAPPINGS
    assert comparisons[0] == 0


def test_a_shared_target_is_compared_once_and_reported(comparisons: list[int]) -> None:
    with pytest.raises(ConfigError, match=r"big.yaml:.*writes `mirror/repo7`.*like mappings\[7\]"):
        parse_config_text(_config("  - {from: other/repo7, to: mirror/repo7}\n"), "big.yaml", environ={})
    assert comparisons[0] == 1
