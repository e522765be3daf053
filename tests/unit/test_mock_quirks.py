"""mockregistry's pure parts: rate text, Go durations, profiles, the sliding window, faults."""

from __future__ import annotations

import pytest

from mockregistry.quirks import (
    GHCR,
    FaultInjector,
    FaultRates,
    MockOptions,
    OptionsError,
    RateLimit,
    go_duration,
    parse_rate,
)
from mockregistry.ratelimit import SlidingWindowLimiter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2000/60s", RateLimit(2000, 60.0), id="ghcr-default"),
        pytest.param("600/6s", RateLimit(600, 6.0), id="seconds"),
        pytest.param("10/1m", RateLimit(10, 60.0), id="minutes"),
        pytest.param("5/500ms", RateLimit(5, 0.5), id="millis"),
        pytest.param("7/2", RateLimit(7, 2.0), id="bare-seconds"),
        pytest.param("3/h", RateLimit(3, 3600.0), id="unit-only"),
    ],
)
def test_parse_rate(text: str, expected: RateLimit) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10", "0/1s", "10/0s", "-1/5s", "10/5x"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(OptionsError):
        parse_rate(text)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0.010487765, "10.487765ms", id="ghcr-sample"),
        pytest.param(0.0, "0s", id="zero"),
        pytest.param(0.0000005, "500ns", id="nanos"),
        pytest.param(0.0000015, "1.5µs", id="micros"),
        pytest.param(1.5, "1.5s", id="seconds"),
        pytest.param(60.0, "1m0s", id="minute"),
        pytest.param(123.25, "2m3.25s", id="minutes"),
        pytest.param(3661.0, "1h1m1s", id="hours"),
    ],
)
def test_go_duration_matches_go(seconds: float, expected: str) -> None:
    assert go_duration(seconds) == expected


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        pytest.param(RateLimit(2000, 60.0), "2000/minute", id="minute"),
        pytest.param(RateLimit(20, 1.0), "20/second", id="second"),
        pytest.param(RateLimit(600, 6.0), "600/6s", id="other"),
    ],
)
def test_rate_describe(limit: RateLimit, expected: str) -> None:
    assert limit.describe() == expected


def test_ghcr_profile_toggles_and_rate_override() -> None:
    profile = MockOptions(profile="ghcr").resolve_profile()
    assert profile == GHCR
    assert profile.rate_limit == RateLimit(2000, 60.0)
    toggled = MockOptions(profile="ghcr", last_patch_wins=False, referrers_api=True,
                          blob_redirect=False, rate_limit="20/1s", tags_page_size=7).resolve_profile()
    assert (toggled.last_patch_wins, toggled.referrers_api, toggled.blob_redirect) == (False, True, False)
    assert toggled.rate_limit == RateLimit(20, 1.0)
    assert toggled.tags_page_size == 7
    assert MockOptions(profile="ghcr", rate_limit="off").resolve_profile().rate_limit is None
    assert MockOptions().resolve_profile().rate_limit is None


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(MockOptions(profile="quay"), id="profile"),
        pytest.param(MockOptions(auth="basic"), id="auth"),
        pytest.param(MockOptions(fault_rate=1.5), id="rate"),
        pytest.param(MockOptions(rate_limit="lots"), id="rate-text"),
    ],
)
def test_bad_options(options: MockOptions) -> None:
    with pytest.raises(OptionsError):
        options.resolve_profile()


def test_sliding_window_exact_counts() -> None:
    limiter = SlidingWindowLimiter(RateLimit(5, 10.0))
    results = [limiter.check("alice", t * 0.25).allowed for t in range(7)]
    assert results == [True] * 5 + [False, False]
    # The oldest request (t=0) leaves the window at t=10: exactly one slot frees.
    assert limiter.check("alice", 9.99).allowed is False
    assert limiter.check("alice", 10.0).allowed is True
    assert limiter.check("alice", 10.125).allowed is False
    assert limiter.check("alice", 10.25).allowed is True
    # Another principal has its own window.
    assert limiter.check("bob", 10.25).allowed is True
    stats = limiter.statistics()
    assert stats["alice"] == {"requests": 11, "throttled": 4, "peak_window": 5}
    assert stats["bob"]["requests"] == 1


def test_sliding_window_retry_after_and_count_rejected() -> None:
    limiter = SlidingWindowLimiter(RateLimit(2, 1.0))
    limiter.check("p", 0.0)
    limiter.check("p", 0.25)
    decision = limiter.check("p", 0.5)
    assert not decision.allowed and decision.retry_after == pytest.approx(0.5)
    strict = SlidingWindowLimiter(RateLimit(2, 1.0), count_rejected=True)
    for t in (0.0, 0.1, 0.2, 0.3):
        strict.check("p", t)
    # Rejected requests at 0.2 and 0.3 occupy the window, so 1.05 is still over the cap.
    assert strict.check("p", 1.05).allowed is False
    assert limiter.check("p", 1.05).allowed is True


def test_sliding_window_without_cap_tracks_peaks() -> None:
    limiter = SlidingWindowLimiter(None)
    for t in range(100):
        assert limiter.check("p", t * 0.01).allowed
    assert limiter.statistics()["p"]["peak_window"] == 100
    limiter.reset()
    assert limiter.statistics()["p"]["requests"] == 0


def test_fault_injector_is_seeded() -> None:
    rates = FaultRates(fault_rate=0.3, reset_rate=0.1, truncate_rate=0.1, corrupt_rate=0.1)

    def run(seed: int) -> list[object]:
        faults = FaultInjector(rates, seed)
        return [(faults.server_error(), faults.body_fault(1000)) for _ in range(200)]

    assert run(7) == run(7), "seed 7 must replay the same faults"
    assert run(7) != run(8)
    outcomes = run(7)
    statuses = {status for status, _ in outcomes if status is not None}
    assert statuses <= {500, 502, 503} and statuses
    kinds = {fault.kind for _, fault in outcomes if fault is not None}
    assert kinds == {"reset", "truncate", "corrupt"}
    assert all(0 <= fault.offset < 1000 for _, fault in outcomes if fault is not None)
    quiet = FaultInjector(FaultRates(), 1)
    assert not quiet.active and quiet.server_error() is None and quiet.body_fault(10) is None


def test_corrupt_first_damages_each_blobs_first_bodies_only() -> None:
    faults = FaultInjector(FaultRates(corrupt_first=2), 0)
    assert faults.active
    first = [faults.body_fault(100, "sha256:a") for _ in range(3)]
    assert [f.kind if f else None for f in first] == ["corrupt", "corrupt", None]
    assert faults.body_fault(100, "sha256:b") is not None  # counted per blob
    assert faults.statistics() == {"corrupt": 3}
    with pytest.raises(OptionsError, match="corrupt_first"):
        MockOptions(corrupt_first=-1).resolve_profile()
