"""Table-driven tests of ocync.ratelimit.caplearner.CapLearner (pure: no trio, ``now`` is a
parameter). Each case is a script of outcomes fed to one learner, with the cap each one must
return (None: keep the current cap) and the source in force after it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ocync.ratelimit.bucket import RateCap, bucket_for_cap
from ocync.ratelimit.caplearner import CapLearner, CapSource, CapStatistics, replaces_shared_cap
from ocync.ratelimit.signals import ThrottleSignal

GHCR_DOCUMENTED = RateCap(2000, 60.0)
LOW = RateCap(100, 10.0)  # lower than the documented 2000/60s
A100, A50, A9 = RateCap(100, 2.0), RateCap(50, 2.0), RateCap(9, 1.0)  # announced

# ("success", now, admitted_at, waiting) or ("throttle", now, signal, admitted_at), then the
# returned cap and the source afterwards.
Step = tuple[str, float, Any, Any, RateCap | None, str | None]


def hinted(retry_after: float | None, allowed: RateCap | None = None) -> ThrottleSignal:
    return ThrottleSignal(retry_after, "429 TOOMANYREQUESTS", allowed)


def play(learner: CapLearner, steps: list[Step]) -> None:
    for i, (event, now, a, b, cap, source) in enumerate(steps):
        if event == "success":
            got = learner.on_success(now, a, waiting=b)
        else:
            got = learner.on_throttle(now, a, b)
        assert (got, learner.source) == (cap, source), f"step {i}: {event} at {now}"
        if got is not None:
            assert learner.cap == got


FOUR_SUCCESSES: list[Step] = [
    ("success", t + 0.01, t, False, None, None) for t in (1.0, 1.1, 1.2, 1.3)
]


@pytest.mark.parametrize(
    ("options", "initial", "steps"),
    [
        pytest.param(
            {},
            None,
            [
                *FOUR_SUCCESSES,
                # 4 successes from 1.0, throttled at 1.5 with a slot free at 2.0: 4 per 1.0 s.
                ("throttle", 1.5, hinted(0.5), 1.4, RateCap(4, 1.0), "estimated"),
                ("throttle", 1.55, hinted(0.5), 1.52, None, "estimated"),  # same epoch
                ("throttle", 1.7, hinted(0.5), 1.45, None, "estimated"),  # paced by nothing
                ("throttle", 1.7, hinted(0.5), 1.6, RateCap(3, 1.0), "estimated"),  # -10%
                ("success", 3.0, 2.9, True, None, "estimated"),  # too soon to probe
                ("success", 3.7, 3.6, False, None, "estimated"),  # nobody waits for it
                ("success", 3.7, 3.6, True, RateCap(4, 1.0), "estimated"),  # +5%, at least 1
                ("success", 4.0, 3.9, True, None, "estimated"),
                ("success", 4.7, 4.6, True, RateCap(5, 1.0), "estimated"),
            ],
            id="estimate-decrease-probe",
        ),
        pytest.param(
            {},
            None,
            [
                *FOUR_SUCCESSES,
                ("throttle", 1.5, hinted(0.5), 1.4, RateCap(4, 1.0), "estimated"),
                ("throttle", 2.0, hinted(0.1, A100), 1.9, A100, "announced"),
                ("throttle", 2.5, hinted(0.1, A100), 2.4, None, "announced"),
                ("throttle", 3.0, hinted(0.1), 2.9, None, "announced"),  # never estimated again
                ("throttle", 3.5, hinted(0.1, A50), 3.4, A50, "announced"),
            ],
            id="announcement-replaces-the-estimate",
        ),
        pytest.param(
            {},
            None,
            [
                *FOUR_SUCCESSES,
                ("throttle", 1.5, hinted(None), 1.4, None, None),  # no hint: nothing to go by
            ],
            id="no-estimate-without-a-hint",
        ),
        pytest.param(
            {},
            None,
            [("throttle", 1.0, hinted(1.0), 0.9, None, None)],
            id="no-estimate-without-successes",
        ),
        pytest.param(
            {"estimate": False},
            None,
            [*FOUR_SUCCESSES, ("throttle", 1.5, hinted(0.5), 1.4, None, None)],
            id="estimate-disabled",
        ),
        pytest.param(
            {"adopt_announced": False},
            None,
            [
                *FOUR_SUCCESSES,
                ("throttle", 1.5, hinted(0.5, A100), 1.4, RateCap(4, 1.0), "estimated"),
            ],
            id="announcement-ignored-estimate-from-its-hint",
        ),
        pytest.param(
            {},
            None,
            [
                ("success", 2.01, 2.0, False, None, None),
                ("success", 2.02, 1.0, False, None, None),  # admitted earlier, answered later
                ("throttle", 3.0, hinted(1.0), 2.5, RateCap(2, 3.0), "estimated"),
            ],
            id="window-opens-at-the-earliest-admission",
        ),
        pytest.param(
            {},
            (GHCR_DOCUMENTED, "documented"),
            [
                ("throttle", 1.0, hinted(0.5, RateCap(6000, 60.0)), 0.9, None, "documented"),
                ("throttle", 2.0, hinted(0.5), 1.9, None, "documented"),  # no estimate over it
                ("throttle", 3.0, hinted(0.5, LOW), 2.9, LOW, "announced"),
            ],
            id="documented-yields-only-to-a-lower-announcement",
        ),
        pytest.param(
            {},
            (RateCap(3000, 60.0), "configured"),
            [
                ("throttle", 1.0, hinted(0.5, RateCap(100, 10.0)), 0.9, None, "configured"),
                ("throttle", 2.0, hinted(0.5), 1.9, None, "configured"),
                ("success", 3.0, 2.9, True, None, "configured"),  # never probed
            ],
            id="configured-always-holds",
        ),
    ],
)
def test_cap_learner_script(
    options: dict[str, bool], initial: tuple[RateCap, CapSource] | None, steps: list[Step]
) -> None:
    learner = CapLearner(**options)
    if initial is not None:
        learner.set(*initial, now=None)
    play(learner, steps)


@pytest.mark.parametrize(
    ("source", "rate_share", "share"),
    [
        pytest.param("configured", 0.5, 0.5, id="configured-is-the-principals"),
        pytest.param("documented", 0.5, 0.5, id="documented-is-the-principals"),
        pytest.param("announced", 0.25, 0.25, id="announced-is-the-principals"),
        pytest.param("estimated", 0.5, 1.0, id="estimate-is-already-ours"),
    ],
)
def test_share_rule(source: CapSource, rate_share: float, share: float) -> None:
    learner = CapLearner()
    cap = RateCap(100, 1.0)
    learner.set(cap, source, now=0.0)
    assert learner.share(rate_share) == share
    bucket = learner.bucket(rate_share=rate_share, now=0.0)
    assert bucket is not None
    assert bucket.rate == bucket_for_cap(cap, rate_share=share).rate


def test_no_cap_no_bucket_and_removing_a_cap_clears_its_source() -> None:
    learner = CapLearner()
    assert learner.bucket(rate_share=1.0) is None
    learner.set(RateCap(10, 1.0), "configured", now=None)
    learner.set(None, "configured", now=5.0)
    assert (learner.cap, learner.source) == (None, None)


def test_statistics_count_what_was_learned() -> None:
    learner = CapLearner()
    play(
        learner,
        [
            *FOUR_SUCCESSES,
            ("throttle", 1.5, hinted(0.5), 1.4, RateCap(4, 1.0), "estimated"),
            ("throttle", 1.7, hinted(0.5), 1.6, RateCap(3, 1.0), "estimated"),
            ("success", 3.7, 3.6, True, RateCap(4, 1.0), "estimated"),
            ("throttle", 4.0, hinted(0.5, A9), 3.9, A9, "announced"),
        ],
    )
    stats = learner.statistics()
    assert stats == CapStatistics(
        cap="9/1s",
        cap_source="announced",
        successes=4,
        estimates=1,
        decreases=1,
        probes=1,
        announcements=1,
    )
    assert stats.to_dict() == dataclasses.asdict(stats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.probes = 0  # type: ignore[misc]
    assert "announced" in repr(learner)


@pytest.mark.parametrize(
    ("current", "current_source", "cap", "source", "replaces"),
    [
        pytest.param(None, None, LOW, "documented", True, id="none-yet"),
        pytest.param(GHCR_DOCUMENTED, "documented", LOW, "documented", True, id="stricter"),
        pytest.param(LOW, "documented", GHCR_DOCUMENTED, "documented", False, id="looser"),
        pytest.param(LOW, "documented", GHCR_DOCUMENTED, "configured", True, id="configured-beats-documented"),
        pytest.param(LOW, "configured", GHCR_DOCUMENTED, "configured", False, id="looser-configured"),
    ],
)
def test_which_cap_a_shared_principal_keeps(
    current: RateCap | None, current_source: CapSource | None, cap: RateCap, source: CapSource, replaces: bool
) -> None:
    assert replaces_shared_cap(current, current_source, cap, source) is replaces
