"""``--shard I/N`` selection: the N shards are disjoint and complete, and a mapping's shard
depends on its key only (not on the config's order, the run or the machine)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocync.engine.sharding import (
    Shard,
    mapping_key,
    parse_shard,
    select,
    shard_from_env,
    shard_of,
    split,
)
from ocync.errors import ConfigError

segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
names = st.lists(segment, min_size=1, max_size=3).map("/".join)
mapping = st.tuples(
    st.sampled_from(["cgr.dev", "docker.io", "ghcr.io", "127.0.0.1:5000"]),
    names,
    st.lists(st.tuples(st.sampled_from(["ghcr.io", "quay.io"]), names), min_size=1, max_size=3),
)


def key(m: tuple[str, str, list[tuple[str, str]]]) -> str:
    return mapping_key(*m)


# a named function: hypothesis 6.170 inspects a lambda unique_by's source with a broken regex
mappings = st.lists(mapping, max_size=40, unique_by=key)


@given(mappings, st.integers(1, 12))
def test_shards_are_disjoint_and_complete(items: list, count: int) -> None:  # type: ignore[type-arg]
    shards = [select(items, key, Shard(i, count)) for i in range(count)]
    keys = [key(m) for s in shards for m in s]
    assert sorted(keys) == sorted(key(m) for m in items)  # complete, nothing twice
    assert len(set(keys)) == len(keys)
    assert shards == split(items, key, count)


@given(mappings, st.integers(1, 12), st.randoms(use_true_random=False))
def test_reordering_keeps_every_mapping_on_its_shard(items: list, count: int, rng: random.Random) -> None:  # type: ignore[type-arg]
    shuffled = list(items)
    rng.shuffle(shuffled)
    for i in range(count):
        before = {key(m) for m in select(items, key, Shard(i, count))}
        assert {key(m) for m in select(shuffled, key, Shard(i, count))} == before


@given(mapping, st.randoms(use_true_random=False))
def test_target_order_does_not_change_the_key(m: tuple, rng: random.Random) -> None:  # type: ignore[type-arg]
    source, repo, targets = m
    reordered = list(targets)
    rng.shuffle(reordered)
    assert mapping_key(source, repo, reordered) == mapping_key(source, repo, targets)


def test_shard_of_is_stable_across_runs() -> None:
    # SHA-256, not hash(): these values hold under any PYTHONHASHSEED and on any machine.
    key_ = mapping_key("cgr.dev", "chainguard/static", [("ghcr.io", "myorg/static")])
    assert [shard_of(key_, n) for n in (1, 2, 3, 7)] == [0, *[
        int.from_bytes(__import__("hashlib").sha256(key_.encode()).digest()[:8], "big") % n
        for n in (2, 3, 7)
    ]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param("0/1", Shard(0, 1), id="one"), pytest.param(" 2/3 ", Shard(2, 3), id="spaces")],
)
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1", "a/b", "1/0", "", "1/2/3"])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("shard", "shards", "env", "expected"),
    [
        pytest.param("1/4", None, {"OCYNC_SHARD": "0/2"}, Shard(1, 4), id="flag-first"),
        pytest.param(None, None, {"OCYNC_SHARD": "0/2"}, Shard(0, 2), id="env"),
        pytest.param(None, 3, {"JOB_COMPLETION_INDEX": "2"}, Shard(2, 3), id="indexed-job"),
        pytest.param(None, None, {"JOB_COMPLETION_INDEX": "2"}, None, id="no-shards-no-split"),
    ],
)
def test_shard_from_env(shard: str | None, shards: int | None, env: dict[str, str], expected: Shard | None) -> None:
    assert shard_from_env(shard, shards, env) == expected


@pytest.mark.parametrize(
    ("shards", "env", "match"),
    [
        pytest.param(3, {}, "needs --shard", id="no-index"),
        pytest.param(3, {"JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX='3'", id="index-too-big"),
    ],
)
def test_shard_from_env_rejects(shards: int, env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        shard_from_env(None, shards, env)
