"""Table-driven tests of ocync.ratelimit.backoff (pure: no trio, the randomness is injected)."""

from __future__ import annotations

import math
import random

import pytest

from ocync.ratelimit.backoff import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    HINT_MARGIN,
    MAX_HINT,
    backoff_delay,
    clamp_hint,
    hint_delay,
)
from ocync.ratelimit.bucket import RateCap
from ocync.ratelimit.signals import ThrottleSignal


class FixedRandom(random.Random):
    """``random()`` always returns ``value``: the jitter becomes a known fraction."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "draw", "expected"),
    [
        pytest.param(1, BACKOFF_BASE, BACKOFF_MAX, 0.0, 0.25, id="first-no-jitter"),
        pytest.param(1, BACKOFF_BASE, BACKOFF_MAX, 0.5, 0.375, id="first-half-jitter"),
        pytest.param(3, BACKOFF_BASE, BACKOFF_MAX, 0.5, 1.5, id="third-doubles-twice"),
        pytest.param(0, BACKOFF_BASE, BACKOFF_MAX, 0.0, 0.25, id="attempt-0-is-1"),
        pytest.param(-4, BACKOFF_BASE, BACKOFF_MAX, 0.0, 0.25, id="negative-is-1"),
        pytest.param(20, BACKOFF_BASE, BACKOFF_MAX, 0.0, 15.0, id="capped-at-30"),
        pytest.param(20, BACKOFF_BASE, BACKOFF_MAX, 0.999, 29.985, id="capped-full-jitter"),
        pytest.param(4, 0.2, 5.0, 0.0, 0.8, id="client-retry-constants"),
        pytest.param(10, 0.5, 15.0, 0.5, 11.25, id="restart-constants-capped"),
    ],
)
def test_backoff_delay(attempt: int, base: float, cap: float, draw: float, expected: float) -> None:
    got = backoff_delay(attempt, FixedRandom(draw), base=base, cap=cap)
    assert got == pytest.approx(expected)


def test_backoff_delay_defaults_and_bounds() -> None:
    assert backoff_delay(2, FixedRandom(0.0)) == backoff_delay(
        2, FixedRandom(0.0), base=BACKOFF_BASE, cap=BACKOFF_MAX
    )
    rng = random.Random(11)
    for attempt in range(1, 16):
        ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff_delay(attempt, rng) <= ceiling


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param(math.nan, None, id="nan"),
        pytest.param(math.inf, None, id="inf"),
        pytest.param(-1.0, HINT_MARGIN, id="negative-is-now"),
        pytest.param(0.0, HINT_MARGIN, id="zero"),
        pytest.param(0.25, 0.25 + HINT_MARGIN, id="ghcr-millis"),
        pytest.param(1e6, MAX_HINT + HINT_MARGIN, id="hours-clamped"),
    ],
)
def test_clamp_hint(seconds: float | None, expected: float | None) -> None:
    assert clamp_hint(seconds) == expected


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        pytest.param(ThrottleSignal(None, "429"), None, id="no-hint"),
        pytest.param(ThrottleSignal(1.5, "429"), 1.5 + HINT_MARGIN, id="hint"),
        pytest.param(
            ThrottleSignal(0.01, "429", RateCap(2000, 60.0)), 0.01 + HINT_MARGIN, id="with-cap"
        ),
        pytest.param(ThrottleSignal(math.inf, "429"), None, id="infinite"),
    ],
)
def test_hint_delay(signal: ThrottleSignal, expected: float | None) -> None:
    assert hint_delay(signal) == expected
