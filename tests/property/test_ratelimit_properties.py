"""Hypothesis properties of the AIMD window, the token bucket and the trio controller."""

from __future__ import annotations

import bisect
import math

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.ratelimit.aimd import AIMDWindow
from ocync.ratelimit.bucket import RateCap, TokenBucket, bucket_for_cap
from ocync.ratelimit.limiter import PrincipalController
from ocync.ratelimit.signals import ThrottleSignal, budget_from_headers, throttle_signal

events = st.lists(
    st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=0.5, allow_nan=False)),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(
    initial=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    cap=st.integers(min_value=1, max_value=64),
    epoch=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    events=events,
)
def test_window_stays_within_floor_and_cap(
    initial: float, cap: int, epoch: float, events: list[tuple[bool, float]]
) -> None:
    aimd = AIMDWindow(initial=initial, cap=cap, epoch=epoch)
    now = 0.0
    for success, dt in events:
        now += dt
        window = aimd.on_success(now) if success else aimd.on_throttle(now)
        assert 1.0 <= window <= cap
        assert 1 <= aimd.limit <= cap
    stats = aimd.statistics()
    assert 1.0 <= stats.min <= stats.mean + 1e-9 and stats.mean <= stats.max + 1e-9 <= cap + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    warmup=events,
    k=st.integers(min_value=1, max_value=50),
    epoch=st.floats(min_value=0.01, max_value=1.0),
    offsets=st.lists(st.floats(min_value=0.0, max_value=0.999), min_size=50, max_size=50),
)
def test_k_throttles_in_one_epoch_halve_exactly_once(
    warmup: list[tuple[bool, float]], k: int, epoch: float, offsets: list[float]
) -> None:
    aimd = AIMDWindow(initial=10, cap=50, epoch=epoch)
    now = 0.0
    for success, dt in warmup:
        now += dt
        aimd.on_success(now) if success else aimd.on_throttle(now)
    now += epoch + 1.0  # any earlier epoch is over
    before = aimd.window
    start = now
    decreases = aimd.statistics().decreases
    for offset in sorted(offsets[:k]):
        aimd.on_throttle(start + offset * epoch)  # all inside [start, start + epoch)
    assert aimd.window == max(1.0, before / 2)
    assert aimd.statistics().decreases == decreases + 1


def _max_in_window(times: list[float], length: float, *, closed: bool) -> int:
    """The most admissions inside any interval of ``length`` (closed or half-open).

    Half-open intervals are shortened by a nanosecond-scale tolerance: the bucket rounds
    refill arithmetic by 1e-9 tokens, far below any server's clock resolution.
    """
    best = 0
    for i, t in enumerate(times):
        if closed:
            end = bisect.bisect_right(times, t + length)
        else:
            end = bisect.bisect_left(times, t + length - 1e-7)
        best = max(best, end - i)
    return best


request_times = st.lists(st.floats(min_value=0.0, max_value=20.0, allow_nan=False), max_size=400)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=200.0),
    burst=st.integers(min_value=1, max_value=20),
    requests=request_times,
    length=st.floats(min_value=0.01, max_value=10.0),
)
def test_bucket_never_admits_more_than_rate_t_plus_burst(
    rate: float, burst: int, requests: list[float], length: float
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    admitted = [t for t in sorted(requests) if bucket.try_take(t)]
    assert _max_in_window(admitted, length, closed=True) <= rate * length + burst + 1e-6


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=500),
    period=st.floats(min_value=0.1, max_value=10.0),
    burst=st.one_of(st.none(), st.integers(min_value=1, max_value=100)),
    share=st.sampled_from([1.0, 0.5, 0.25, 1 / 3]),
    headroom=st.floats(min_value=0.5, max_value=1.0),
)
def test_bucket_for_cap_respects_a_sliding_window_even_when_saturated(
    count: int, period: float, burst: int | None, share: float, headroom: float
) -> None:
    """Saturated: a request is always waiting, so every token is spent the moment it exists."""
    bucket = bucket_for_cap(
        RateCap(count, period, burst), rate_share=share, headroom=headroom, now=0.0
    )
    limit = max(1, math.floor(count * share))
    admitted: list[float] = []
    now = 0.0
    horizon = period * 3
    # Idle long enough to refill the burst, then saturate.
    while now < horizon and len(admitted) < 5000:
        if bucket.try_take(now):
            admitted.append(now)
        else:
            now += bucket.delay(now)
    assert _max_in_window(admitted, period, closed=False) <= limit


async def _contention_run(
    plan: list[tuple[float, float, str, int]], window: int, cap: RateCap | None
) -> list[tuple[int, str, float]]:
    controller = PrincipalController(
        "p",
        window_groups={"blob_head": None, "manifest_get": "manifest"},
        cap=cap,
        initial_window=window,
        max_concurrent=8,
        seed=1,
    )
    admitted: list[tuple[int, str, float]] = []

    async def request(i: int, start: float, hold: float, kind: str, outcome: int) -> None:
        await trio.sleep(start)
        async with controller.permit(kind) as permit:
            admitted.append((i, kind, trio.current_time()))
            await trio.sleep(hold)
            if outcome == 0:
                permit.succeeded()
            elif outcome == 1:
                permit.throttled(ThrottleSignal(retry_after=hold, reason="429"))

    async with trio.open_nursery() as nursery:
        for i, (start, hold, kind, outcome) in enumerate(plan):
            nursery.start_soon(request, i, start, hold, kind, outcome)
    for stats in controller.statistics().windows.values():
        assert stats.in_flight == 0 and stats.waiting == 0
    return admitted


plans = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1000).map(lambda n: n * 0.001),  # distinct-ish starts
        st.floats(min_value=0.0, max_value=0.3),
        st.sampled_from(["blob_get", "manifest_get", "blob_head", "upload_put"]),
        st.integers(min_value=0, max_value=2),  # success, throttle, neutral
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(plan=plans, window=st.integers(min_value=1, max_value=6), capped=st.booleans())
def test_every_waiter_is_admitted_in_fifo_order(
    plan: list[tuple[float, float, str, int]], window: int, capped: bool
) -> None:
    cap = RateCap(20, 1.0, 2) if capped else None
    admitted = trio.run(
        _contention_run, plan, window, cap, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    # No starvation: every request got its permit (the run ended, so each one finished).
    assert sorted(i for i, _, _ in admitted) == list(range(len(plan)))
    # FIFO among metered requests sharing a window key: whoever asked earlier was admitted no
    # later (tasks woken at the same instant may resume in either order, so compare times).
    keys = {"blob_get": "default", "upload_put": "default", "manifest_get": "manifest"}
    for key in ("default", "manifest"):
        rows = sorted((plan[i][0], t) for i, kind, t in admitted if keys.get(kind) == key)
        times = [t for _, t in rows]
        assert times == sorted(times), rows


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    headers=st.dictionaries(
        st.sampled_from(
            ["retry-after", "date", "ratelimit-remaining", "x-ratelimit-reset", "ratelimit", "x"]
        ),
        st.text(max_size=40),
        max_size=4,
    ),
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.builds(
            lambda m: ('{"errors":[{"code":"TOOMANYREQUESTS","message":' + m + "}]}").encode(),
            st.text(max_size=60).map(lambda s: '"' + s.replace('"', "").replace("\\", "") + '"'),
        ),
    ),
)
def test_signal_parsers_never_raise(status: int, headers: dict[str, str], body: bytes) -> None:
    signal = throttle_signal(status, headers, body, now=1.7e9)
    if signal is not None:
        assert signal.retry_after is None or (
            signal.retry_after >= 0 and math.isfinite(signal.retry_after)
        )
    budget = budget_from_headers(headers, now=1.7e9)
    if budget is not None:
        assert budget[0] >= 0 and (budget[1] is None or budget[1] >= 0)


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=300),
    period=st.floats(min_value=0.5, max_value=60.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=800),
)
def test_estimated_cap_never_exceeds_a_sliding_window_cap_on_a_cold_start(
    count: int, period: float, gaps: list[float]
) -> None:
    """Our requests arrive at a fresh sliding-window server (the mock's own limiter); at the
    first 429 the estimate from its hint is at most the true rate, and exact for a burst."""
    from mockregistry.quirks import RateLimit
    from mockregistry.ratelimit import SlidingWindowLimiter
    from ocync.ratelimit.bucket import estimate_cap

    server = SlidingWindowLimiter(RateLimit(count, period))
    now = 0.0
    first: float | None = None
    successes = 0
    for gap in gaps:
        now += gap
        decision = server.check("alice", now)
        if decision.allowed:
            first = now if first is None else first
            successes += 1
            continue
        assert first is not None
        estimate = estimate_cap(successes, first, now, decision.retry_after)
        assert estimate is not None
        assert estimate.rate <= count / period * (1 + 1e-9)
        if now - first < period:  # the whole run fits one window: the estimate is exact
            assert estimate.count == count
            assert estimate.period == pytest.approx(period)
        return
