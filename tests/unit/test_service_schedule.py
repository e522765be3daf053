"""The service's schedule and failure backoff: pure functions of ``now``."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ocync.errors import ConfigError
from ocync.service.schedule import CronSchedule, FailureBackoff, IntervalSchedule, next_cycle_at


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expression", "finished", "expected"),
    [
        pytest.param("*/30 * * * *", "2026-01-01T10:00:00", "2026-01-01T10:30:00", id="on-slot-next-slot"),
        pytest.param("*/30 * * * *", "2026-01-01T10:29:59", "2026-01-01T10:30:00", id="just-before"),
        # a cycle that ran past two slots starts at the next one, never twice
        pytest.param("*/30 * * * *", "2026-01-01T11:05:00", "2026-01-01T11:30:00", id="missed-slots"),
        pytest.param("0 3 * * 1", "2026-01-01T00:00:00", "2026-01-05T03:00:00", id="weekly-monday"),
    ],
)
def test_cron_next_start(expression: str, finished: str, expected: str) -> None:
    assert CronSchedule(expression).next_start(ts(finished)) == ts(expected)


def test_cron_period_and_invalid_expression() -> None:
    assert CronSchedule("*/30 * * * *").period(ts("2026-01-01T10:10:00")) == 1800
    with pytest.raises(ConfigError, match="not a cron expression"):
        CronSchedule("every half hour")


def test_interval_counts_from_the_end_of_a_cycle() -> None:
    assert IntervalSchedule(300).next_start(1000.0) == 1300.0
    assert IntervalSchedule(300).period(0) == 300


def test_backoff_grows_is_capped_and_jittered_within_bounds() -> None:
    backoff = FailureBackoff(base=2, maximum=60)
    assert backoff.delay(0, 0.5) == 0
    assert [backoff.delay(k, 0.0) for k in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert [backoff.delay(k, 0.999999) for k in (1, 2, 3)] == pytest.approx([2, 4, 8], rel=1e-5)
    assert backoff.delay(50, 0.999999) == pytest.approx(60, rel=1e-5)
    assert backoff.delay(10_000, 0.0) == 30  # no overflow far past the cap
    seed = 1234
    rng = random.Random(seed)
    previous = 0.0
    for failures in range(1, 12):
        delay = backoff.delay(failures, rng.random())
        # equal jitter: never shorter than the one before while failures go on
        assert delay >= previous or delay >= 30, f"seed {seed}: failures {failures}"
        previous = delay


def test_next_cycle_is_the_schedule_pushed_later_by_backoff() -> None:
    interval, backoff = IntervalSchedule(1.0), FailureBackoff(base=2, maximum=300)
    assert next_cycle_at(interval, backoff, 100.0, 0, 0.0) == 101.0  # success: the schedule
    assert next_cycle_at(interval, backoff, 100.0, 1, 0.0) == 101.0  # backoff 1s, not sooner
    assert next_cycle_at(interval, backoff, 100.0, 3, 0.0) == 104.0  # backoff beyond the interval
    hourly = IntervalSchedule(3600.0)
    assert next_cycle_at(hourly, backoff, 0.0, 3, 0.0) == 3600.0  # failures never ask more often
