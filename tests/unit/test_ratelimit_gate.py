"""Table-driven tests of ocync.ratelimit.gate.GateState (pure: no trio, ``now`` is a parameter).

Each case is a script of events fed to one gate, with the value each event must return; the
jitter is pinned (``random()`` is 0.0, so a backoff is half its ceiling: 0.25 s, 0.5 s, 1 s...).
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest

from ocync.ratelimit.backoff import HINT_MARGIN as M
from ocync.ratelimit.bucket import TokenBucket
from ocync.ratelimit.gate import GateState, GateStatistics
from ocync.ratelimit.signals import ThrottleSignal


class NoJitter(random.Random):
    def random(self) -> float:
        return 0.0


# (event, now, argument, expected return)
Step = tuple[str, float, Any, Any]


def play(gate: GateState, steps: list[Step]) -> None:
    rng = NoJitter(0)
    for i, (event, now, arg, expected) in enumerate(steps):
        got: Any
        if event == "throttle":
            got = gate.on_throttle(now, ThrottleSignal(arg, "429"), rng)
        elif event == "throttle-same-epoch":
            got = gate.on_throttle(now, ThrottleSignal(arg, "429"), rng, new_epoch=False)
        elif event == "budget":
            remaining, reset, in_flight = arg
            got = gate.on_budget(now, remaining, reset, in_flight, rng)
        elif event == "success":
            gate.on_success()
            got = gate.consecutive_throttles
        elif event == "delay":
            got = gate.delay(now)
        elif event == "paused_for":
            got = gate.paused_for(now)
        elif event == "admit":
            gate.admit(now)
            got = gate.delay(now)
        else:  # pragma: no cover - a typo in a table
            raise AssertionError(event)
        assert got == pytest.approx(expected), f"step {i}: {event} at {now}"


@pytest.mark.parametrize(
    ("steps", "stats"),
    [
        pytest.param(
            [
                ("delay", 0.0, None, -math.inf),
                ("throttle", 10.0, 1.5, 1.5 + M),
                ("delay", 10.0, None, 1.5 + M),
                ("paused_for", 11.0, None, 0.5 + M),
                ("delay", 11.5 + M, None, 0.0),
                ("paused_for", 12.0, None, 0.0),
            ],
            {"paused_seconds": 1.5 + M, "consecutive_throttles": 1, "budget_pauses": 0},
            id="hint-pauses-until-it-expires",
        ),
        pytest.param(
            [
                ("throttle", 0.0, None, 0.25),
                ("throttle", 0.3, None, 0.5),
                ("throttle-same-epoch", 0.31, None, 0.5),
                ("throttle", 1.0, None, 1.0),
                ("success", 2.0, None, 0),
                ("throttle", 3.0, None, 0.25),
            ],
            {"paused_seconds": 0.25 + 0.5 + 0.01 + 1.0 + 0.25, "consecutive_throttles": 1},
            id="no-hint-backs-off-by-throttled-epochs",
        ),
        pytest.param(
            [
                ("throttle", 0.0, 2.0, 2.0 + M),
                ("throttle", 1.0, 0.5, 0.5 + M),  # inside the pause: not extended
                ("delay", 1.0, None, 1.0 + M),
                ("throttle", 1.0, 3.0, 3.0 + M),  # extends it by 2 s
                ("delay", 1.0, None, 3.0 + M),
            ],
            {"paused_seconds": 4.0 + M, "consecutive_throttles": 3},
            id="overlapping-pauses-count-once",
        ),
        pytest.param(
            [
                ("budget", 0.0, (50, 3.0, 1), 0.0),  # plenty left
                ("budget", 0.0, (2, 3.0, 1), 0.0),  # covers the one in flight and one more
                ("budget", 0.0, (1, 3.0, 1), 3.0 + M),  # one left, one in flight: stop
                ("delay", 0.0, None, 3.0 + M),
                ("budget", 1.0, (0, 1.0, 1), 1.0 + M),  # within the pause: no new one
                ("budget", 2.0, (2, None, 3), 0.25),  # no reset: one backoff, still inside
                ("budget", 5.0, (1, math.nan, 0), 0.25),  # nothing in flight, one left
                ("budget", 6.0, (0, 1e9, 0), 300.0 + M),  # an absurd reset is clamped
            ],
            {"paused_seconds": 3.0 + 2 * M + 0.25 + 300.0, "budget_pauses": 3},
            id="budget-closes-before-the-wall",
        ),
    ],
)
def test_gate_script(steps: list[Step], stats: dict[str, Any]) -> None:
    gate = GateState()
    play(gate, steps)
    got = dataclasses.asdict(gate.statistics())
    for key, value in stats.items():
        assert got[key] == pytest.approx(value), key


def test_gate_paces_by_its_bucket_and_a_throttle_drains_it() -> None:
    gate = GateState()
    gate.set_bucket(TokenBucket(1.0, 2.0), now=None)  # before the run: clock starts at first use
    play(
        gate,
        [
            ("delay", 100.0, None, 0.0),
            ("admit", 100.0, None, 0.0),  # one token left
            ("admit", 100.0, None, 1.0),  # empty: the next one in 1 s
            ("delay", 100.5, None, 0.5),
            ("throttle", 100.5, 0.1, 0.1 + M),  # drains the half token too
            ("delay", 100.5, None, 1.0),
            ("delay", 100.6 + M, None, 0.9 - M),
            ("budget", 101.0, (0, None, 0), 0.25),  # a budget pause drains it as well
            ("delay", 101.0, None, 1.0),
        ],
    )
    assert gate.statistics().bucket_rate == 1.0


@pytest.mark.parametrize(
    ("now", "expected_delay"),
    [
        pytest.param(0.5, 0.05, id="keeps-the-old-tokens"),
        pytest.param(None, 0.0, id="before-the-run-starts-full"),
    ],
)
def test_replacing_the_bucket_hands_out_no_fresh_burst(
    now: float | None, expected_delay: float
) -> None:
    gate = GateState()
    gate.set_bucket(TokenBucket(1.0, 1.0), now=0.0)
    gate.admit(0.0)  # empty at 0; half a token by 0.5
    gate.set_bucket(TokenBucket(10.0, 5.0), now=now)
    at = 0.5
    if now is not None:
        assert gate.delay(at) == pytest.approx(expected_delay)  # 0.5 token: 0.05 s at 10/s
        gate.set_bucket(None, now=at)
        assert gate.bucket is None and gate.delay(at) == -math.inf
    else:
        assert gate.delay(at) == expected_delay


def test_gate_statistics_are_a_frozen_value() -> None:
    gate = GateState()
    gate.on_throttle(1.0, ThrottleSignal(2.0, "429"), NoJitter(0))
    stats = gate.statistics()
    assert stats == GateStatistics(
        paused_until=3.0 + M,
        paused_seconds=2.0 + M,
        consecutive_throttles=1,
        budget_pauses=0,
        bucket_rate=None,
    )
    assert stats.to_dict() == dataclasses.asdict(stats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.budget_pauses = 2  # type: ignore[misc]
    assert "consecutive_throttles=1" in repr(gate)
