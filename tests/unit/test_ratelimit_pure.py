"""Table-driven tests of the pure rate-limit pieces: parse_rate, RateCap, TokenBucket, AIMD."""

from __future__ import annotations

import math

import pytest

from ocync.errors import ConfigError
from ocync.ratelimit.aimd import AIMDWindow
from ocync.ratelimit.bucket import RateCap, TokenBucket, bucket_for_cap, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2000/60s", RateCap(2000, 60.0), id="ghcr"),
        pytest.param("600/6s", RateCap(600, 6.0), id="seconds"),
        pytest.param("10/1m", RateCap(10, 60.0), id="minutes"),
        pytest.param("5/500ms", RateCap(5, 0.5), id="millis"),
        pytest.param("2000/minute", RateCap(2000, 60.0), id="word-unit"),
        pytest.param("100/h", RateCap(100, 3600.0), id="hour-no-number"),
        pytest.param(" 7 / 2.5s ", RateCap(7, 2.5), id="spaces-fraction"),
        pytest.param("100/10", RateCap(100, 10.0), id="bare-seconds"),
        pytest.param("600/6s,burst=10", RateCap(600, 6.0, 10), id="burst"),
    ],
)
def test_parse_rate(text: str, expected: RateCap) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("600", id="no-period"),
        pytest.param("600/", id="empty-period"),
        pytest.param("600/6x", id="bad-unit"),
        pytest.param("0/6s", id="zero-count"),
        pytest.param("-5/6s", id="negative"),
        pytest.param("600/0s", id="zero-period"),
        pytest.param("abc/6s", id="not-a-number"),
        pytest.param("600/6s,burst=0", id="zero-burst"),
    ],
)
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="rate limit"):
        parse_rate(text)


def test_rate_cap_scaled_and_str() -> None:
    cap = RateCap(600, 6.0, 40)
    assert cap.rate == 100.0
    assert cap.scaled(0.5) == RateCap(300, 6.0, 40)
    assert str(cap) == "600/6s,burst=40"
    with pytest.raises(ConfigError, match="rate share"):
        cap.scaled(0.0)


def test_token_bucket_refills_at_rate_up_to_capacity() -> None:
    bucket = TokenBucket(10.0, 2.0, now=0.0)
    assert bucket.try_take(0.0) and bucket.try_take(0.0)
    assert not bucket.try_take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.1)
    assert bucket.try_take(0.1)
    assert bucket.available(100.0) == 2.0  # never above capacity
    bucket.drain(100.0)
    assert bucket.delay(100.0) == pytest.approx(0.1)
    assert bucket.taken == 3
    # Time going backwards (it cannot with trio's clock) never mints tokens.
    assert bucket.available(50.0) == 0.0


@pytest.mark.parametrize(
    ("cap", "share", "expected_rate", "expected_capacity"),
    [
        pytest.param(RateCap(30, 6.0), 1.0, 30 * 0.96 / 6, 1, id="small-cap-burst-1"),
        pytest.param(RateCap(60, 6.0), 1.0, (57.6 - 1) / 6, 2, id="burst-2-from-50"),
        pytest.param(RateCap(600, 6.0), 1.0, (576 - 6) / 6, 7, id="default-burst-1-percent"),
        pytest.param(RateCap(600, 6.0), 0.5, (288 - 3) / 6, 4, id="half-share"),
        pytest.param(RateCap(600, 6.0, 21), 1.0, (576 - 20) / 6, 21, id="burst-paid-by-rate"),
        pytest.param(RateCap(2000, 60.0), 1.0, (1920 - 20) / 60, 21, id="ghcr"),
    ],
)
def test_bucket_for_cap(
    cap: RateCap, share: float, expected_rate: float, expected_capacity: int
) -> None:
    bucket = bucket_for_cap(cap, rate_share=share, now=0.0)
    assert bucket.rate == pytest.approx(expected_rate)
    assert bucket.capacity == expected_capacity
    assert bucket.available(0.0) == expected_capacity  # starts with only its small burst


def test_aimd_additive_increase_and_cap() -> None:
    aimd = AIMDWindow(initial=5, cap=8, epoch=0.1)
    assert aimd.on_success(0.0) == pytest.approx(5.2)
    for i in range(200):
        aimd.on_success(0.01 * i)
    assert aimd.window == 8.0 and aimd.limit == 8


def test_aimd_grows_only_when_the_window_was_the_limit() -> None:
    aimd = AIMDWindow(initial=5, cap=50, epoch=0.1)
    for i in range(100):
        aimd.on_success(0.01 * i, limited=False)
    assert aimd.window == 5.0 and aimd.statistics().successes == 100
    assert aimd.on_success(1.0) == pytest.approx(5.2)


def test_aimd_halves_once_per_epoch_with_floor() -> None:
    aimd = AIMDWindow(initial=8, cap=50, epoch=0.1)
    assert aimd.on_throttle(1.0) == 4.0
    assert aimd.on_throttle(1.05) == 4.0  # same epoch
    assert aimd.in_epoch(1.09) and not aimd.in_epoch(1.1)
    assert aimd.on_throttle(1.1) == 2.0  # the next epoch
    assert aimd.on_throttle(2.0) == 1.0
    assert aimd.on_throttle(3.0) == 1.0  # floor
    stats = aimd.statistics()
    assert (stats.throttles, stats.decreases, stats.min, stats.max) == (5, 4, 1.0, 8.0)


def test_aimd_time_weighted_mean() -> None:
    aimd = AIMDWindow(initial=8, cap=50, epoch=0.1)
    aimd.on_throttle(0.0)  # 4 from t=0
    aimd.on_throttle(1.0)  # 4 for one second, then 2
    aimd.on_throttle(4.0)  # 2 for three seconds, then 1
    assert aimd.statistics().mean == pytest.approx((4 * 1 + 2 * 3) / 4)
    assert math.isclose(aimd.statistics().to_dict()["mean"], 2.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"cap": 0}, "cap", id="cap"),
        pytest.param({"epoch": -1.0}, "epoch", id="epoch"),
    ],
)
def test_aimd_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AIMDWindow(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param((560, 0.0, 0.5, 5.5), RateCap(560, 6.0), id="cold-start-burst"),
        pytest.param((99, 10.0, 12.0, 0.0), RateCap(99, 2.0), id="no-wait-left"),
        pytest.param((0, 0.0, 1.0, 5.0), None, id="no-successes"),
        pytest.param((5, 3.0, 1.0, 1.0), None, id="negative-period"),
        pytest.param((5, 0.0, 1.0, math.inf), None, id="infinite-hint"),
    ],
)
def test_estimate_cap(args: tuple[int, float, float, float], expected: RateCap | None) -> None:
    from ocync.ratelimit.bucket import estimate_cap

    assert estimate_cap(*args) == expected
