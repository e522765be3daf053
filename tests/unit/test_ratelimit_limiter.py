"""Deterministic trio tests of PrincipalController (MockClock with autojump: no real sleeps)."""

from __future__ import annotations

import math
import random

import pytest
import trio
import trio.testing

from ocync.errors import ConfigError
from ocync.ratelimit.backoff import BACKOFF_BASE, backoff_delay
from ocync.ratelimit.bucket import RateCap
from ocync.ratelimit.caplearner import adopts_announced_cap
from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController
from ocync.ratelimit.signals import ThrottleSignal

GHCR_GROUPS: dict[str, str | None] = {}  # one window for everything
HUB_GROUPS: dict[str, str | None] = {
    "blob_head": None,
    "manifest_head": None,
    "manifest_get": "manifest",
}

THROTTLE = ThrottleSignal(retry_after=None, reason="429 Too Many Requests")


async def test_fifo_admission_through_window(autojump_clock: trio.testing.MockClock) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, initial_window=1)
    admitted: list[int] = []

    async def request(i: int) -> None:
        await trio.sleep(0.001 * i)  # enqueue in order i
        async with controller.permit("blob_get"):
            admitted.append(i)
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(request, i)
    assert admitted == list(range(20))
    stats = controller.statistics().windows["default"]
    assert (stats.in_flight, stats.waiting, stats.requests) == (0, 0, 20)


async def test_fifo_admission_through_bucket(autojump_clock: trio.testing.MockClock) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, cap=RateCap(10, 1.0))
    admitted: list[tuple[int, float]] = []

    async def request(i: int) -> None:
        await trio.sleep(0.0001 * i)
        async with controller.permit("manifest_get"):
            admitted.append((i, trio.current_time()))

    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(request, i)
    assert [i for i, _ in admitted] == list(range(30))
    times = [t for _, t in admitted]
    # Paced at 9.6/s (10/s minus headroom), one token of burst: no two closer than 1/9.6 s.
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1 / 9.6 - 1e-6
    assert times[-1] == pytest.approx(0.0029 + 29 / 9.6, abs=0.01)


async def test_shrinking_window_never_cancels_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, initial_window=4)
    release = trio.Event()
    finished: list[int] = []
    in_flight_peak_after_throttle = 0

    async def holder(i: int, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with controller.permit("blob_get") as permit:
            task_status.started()
            await release.wait()
            if i == 0:
                permit.throttled(ThrottleSignal(retry_after=0.0, reason="429"))
        finished.append(i)

    async def late(i: int) -> None:
        nonlocal in_flight_peak_after_throttle
        async with controller.permit("blob_get"):
            in_flight = controller.statistics().windows["default"].in_flight
            in_flight_peak_after_throttle = max(in_flight_peak_after_throttle, in_flight)
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for i in range(4):
            await nursery.start(holder, i)
        assert controller.statistics().windows["default"].in_flight == 4
        release.set()
        await trio.sleep(0.001)
        assert sorted(finished) == [0, 1, 2, 3]  # none was cancelled by the shrink
        assert controller.window_limit() == 2
        for i in range(6):
            nursery.start_soon(late, i)
    assert in_flight_peak_after_throttle <= 2


async def test_permits_released_on_success_error_and_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController(
        "p", window_groups=GHCR_GROUPS, initial_window=1, max_concurrent=1
    )

    async with controller.permit("blob_get") as permit:
        permit.succeeded()
    with pytest.raises(ValueError, match="boom"):
        async with controller.permit("blob_get"):
            raise ValueError("boom")
    with trio.move_on_after(1.0) as scope:
        async with controller.permit("blob_get"):
            await trio.sleep(10)  # cancelled while holding the permit
    assert scope.cancelled_caught

    # Cancelled while waiting in the queue behind a holder.
    async with trio.open_nursery() as nursery:
        hold = trio.Event()

        async def holder(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            async with controller.permit("blob_get"):
                task_status.started()
                await hold.wait()

        await nursery.start(holder)
        with trio.move_on_after(0.5) as waiting_scope:
            async with controller.permit("blob_get"):
                pytest.fail("admitted past a full window")
        assert waiting_scope.cancelled_caught
        assert controller.statistics().windows["default"].waiting == 0
        hold.set()

    stats = controller.statistics().windows["default"]
    assert (stats.in_flight, stats.waiting) == (0, 0)
    with trio.fail_after(0.001):  # the slot is free again: admitted at once
        async with controller.permit("blob_get"):
            pass


async def test_cancelled_gate_head_hands_over(autojump_clock: trio.testing.MockClock) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, cap=RateCap(1, 1.0))
    async with controller.permit("blob_get"):
        pass  # the single token is spent; the next one comes in ~1.05 s
    admitted_at: list[float] = []

    async def second() -> None:
        async with controller.permit("blob_get"):
            admitted_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.2):  # the head of the gate gives up
            nursery.start_soon(second)
            await trio.sleep(0.01)
            async with controller.permit("blob_get"):
                pytest.fail("queue-jumped the gate")
    assert len(admitted_at) == 1


async def test_rate_share_scales_the_cap(autojump_clock: trio.testing.MockClock) -> None:
    full = PrincipalController("a", window_groups=GHCR_GROUPS, cap=RateCap(100, 1.0))
    half = PrincipalController(
        "b", window_groups=GHCR_GROUPS, cap=RateCap(100, 1.0), rate_share=0.5
    )

    async def count_in(controller: PrincipalController, seconds: float) -> int:
        n = 0
        with trio.move_on_after(seconds):
            while True:
                async with controller.permit("blob_get"):
                    n += 1
        return n

    n_full = await count_in(full, 10.0)
    n_half = await count_in(half, 10.0)
    # 100/s: burst 2, refill (96 - 1)/s; half: 50/s, burst 2, refill (48 - 1)/s.
    assert n_full == pytest.approx(2 + 950, abs=2)
    assert n_half == pytest.approx(2 + 470, abs=2)
    assert half.statistics().bucket_rate == pytest.approx(47.0)


async def test_throttle_pauses_new_admissions_until_the_hint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController("p", window_groups=HUB_GROUPS)
    async with controller.permit("blob_get") as permit:
        t0 = trio.current_time()
        permit.throttled(ThrottleSignal(retry_after=1.5, reason="429"))
    async with controller.permit("manifest_get"):  # another window key: the pause is per principal
        assert trio.current_time() - t0 >= 1.5
    # Unmetered kinds are never paused.
    async with controller.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(retry_after=5.0, reason="429"))
    t1 = trio.current_time()
    async with controller.permit("blob_head") as head:
        assert head.key is None
        assert trio.current_time() == t1
    stats = controller.statistics()
    assert stats.throttles == 2 and stats.unmetered == 1
    assert stats.paused_seconds == pytest.approx(1.5 + 5.0, abs=0.05)


async def test_budget_headers_pause_proactively(autojump_clock: trio.testing.MockClock) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS)
    async with controller.permit("blob_get"):
        controller.observe_budget(50, 3.0)  # plenty left: no pause
    assert controller.paused_for() == 0.0
    t0 = trio.current_time()
    async with controller.permit("blob_get"):
        controller.observe_budget(1, 3.0)  # one left and one in flight: stop before the wall
    async with controller.permit("blob_get"):
        assert trio.current_time() - t0 >= 3.0
    assert controller.statistics().budget_pauses == 1


async def test_wait_after_throttle_uses_hint_or_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, seed=7)
    t0 = trio.current_time()
    await controller.wait_after_throttle(ThrottleSignal(retry_after=0.25, reason="429"), 1)
    assert trio.current_time() - t0 == pytest.approx(0.255)
    t1 = trio.current_time()
    await controller.wait_after_throttle(THROTTLE, 3)
    waited = trio.current_time() - t1
    assert BACKOFF_BASE * 4 / 2 <= waited <= BACKOFF_BASE * 4
    assert controller.statistics().throttle_wait_seconds == pytest.approx(0.255 + waited)


def test_backoff_delay_bounds() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        ceiling = min(30.0, BACKOFF_BASE * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff_delay(attempt, rng) <= ceiling


async def test_success_grows_window_and_admits_waiters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController(
        "p", window_groups=GHCR_GROUPS, initial_window=1, max_concurrent=3
    )
    peak = 0
    in_flight = 0

    async def request() -> None:
        nonlocal peak, in_flight
        async with controller.permit("blob_get") as permit:
            in_flight += 1
            peak = max(peak, in_flight)
            await trio.sleep(0.01)
            in_flight -= 1
            permit.succeeded()

    async with trio.open_nursery() as nursery:
        for _ in range(60):
            nursery.start_soon(request)
    assert peak == 3
    window = controller.statistics().windows["default"].window
    assert window.window == 3.0 and window.min == 1.0 and window.successes == 60


async def test_window_does_not_swell_while_the_bucket_paces(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, cap=RateCap(20, 1.0))

    async def request() -> None:
        async with controller.permit("blob_get") as permit:
            await trio.sleep(0.01)  # far shorter than the 1/20 s pacing: one in flight
            permit.succeeded()

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(request)
    window = controller.statistics().windows["default"].window
    assert window.successes == 100
    assert window.max == 5.0  # never window-limited, never grown


async def test_announced_cap_is_adopted(autojump_clock: trio.testing.MockClock) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, rate_share=0.5)
    async with controller.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(0.01, "429 TOOMANYREQUESTS", RateCap(2000, 60.0)))
    stats = controller.statistics()
    assert stats.cap == "2000/60s" and stats.learned_cap
    assert stats.bucket_rate == pytest.approx((960 - 10) / 60)
    # A configured cap is never replaced by an announcement.
    configured = PrincipalController("q", window_groups=GHCR_GROUPS, cap=RateCap(100, 60.0))
    async with configured.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(0.01, "429", RateCap(2000, 60.0)))
    assert configured.statistics().cap == "100/60s"


def test_registry_shares_one_controller_per_principal() -> None:
    registry = ControllerRegistry(rate_share=0.5)
    a = registry.controller_for("ghcr.io|alice", window_groups=GHCR_GROUPS, cap=RateCap(2000, 60.0))
    b = registry.controller_for("ghcr.io|alice", window_groups=GHCR_GROUPS, cap=RateCap(600, 6.0))
    c = registry.controller_for("ghcr.io|bob", window_groups=GHCR_GROUPS)
    assert a is b and a is not c and len(registry) == 2
    assert a.cap == RateCap(2000, 60.0)  # 600/6s is faster, so not stricter
    registry.controller_for("ghcr.io|alice", window_groups=GHCR_GROUPS, cap=RateCap(10, 1.0))
    assert a.cap == RateCap(10, 1.0)
    assert a.rate_share == 0.5
    assert [s.name for s in registry.statistics()] == ["ghcr.io|alice", "ghcr.io|bob"]
    assert "ghcr.io|alice" in repr(registry)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5, math.nan])
def test_rate_share_out_of_range(share: float) -> None:
    with pytest.raises(ConfigError, match="rate-share"):
        PrincipalController("p", window_groups=GHCR_GROUPS, rate_share=share)


async def test_statistics_to_dict(autojump_clock: trio.testing.MockClock) -> None:
    controller = PrincipalController(
        "ghcr.io|alice", window_groups=HUB_GROUPS, cap=RateCap(600, 6.0)
    )
    for kind in ("blob_get", "manifest_get", "blob_head"):
        async with controller.permit(kind) as permit:
            permit.succeeded()
    data = controller.statistics().to_dict()
    assert data["requests"] == 3 and data["unmetered"] == 1
    assert set(data["windows"]) == {"default", "manifest"}
    assert data["windows"]["default"]["requests"] == 1
    assert {"min", "mean", "max", "window", "limit"} <= set(data["windows"]["manifest"])
    assert data["cap"] == "600/6s"
    assert "ghcr.io|alice" in repr(controller)


async def test_cap_estimated_from_the_first_hinted_throttle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controller = PrincipalController("p", window_groups=GHCR_GROUPS, rate_share=0.5)
    start = trio.current_time()
    for _ in range(40):  # 40 successes in 0.4 s, then the wall
        async with controller.permit("blob_get") as permit:
            await trio.sleep(0.01)
            permit.succeeded()
    async with controller.permit("blob_get") as late:
        pass  # admitted before the estimate: its 429 below must not lower it
    async with controller.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(retry_after=1.6, reason="429"))
    stats = controller.statistics()
    assert stats.cap_source == "estimated" and stats.learned_cap
    assert controller.cap is not None and controller.cap.count == 40
    assert controller.cap.period == pytest.approx(trio.current_time() - start + 1.6)
    # Our own successes are already our share: rate_share is not applied again.
    assert stats.bucket_rate == pytest.approx((40 * 0.96) / controller.cap.period)
    late.throttled(ThrottleSignal(retry_after=1.0, reason="429"))
    assert controller.cap.count == 40
    # A request paced by the estimate and still throttled lowers it by 10%.
    async with controller.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(retry_after=0.5, reason="429"))
    assert controller.cap.count == 36
    # An announcement replaces the estimate.
    async with controller.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(0.1, "429", RateCap(100, 2.0)))
    assert controller.cap == RateCap(100, 2.0)
    assert controller.statistics().cap_source == "announced"


async def test_no_estimate_without_a_hint_or_when_disabled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for estimate, signal in [
        (True, ThrottleSignal(retry_after=None, reason="429")),
        (False, ThrottleSignal(retry_after=1.0, reason="429")),
    ]:
        controller = PrincipalController("p", window_groups=GHCR_GROUPS, estimate_cap=estimate)
        async with controller.permit("blob_get") as permit:
            permit.succeeded()
        async with controller.permit("blob_get") as permit:
            permit.throttled(signal)
        assert controller.cap is None and controller.statistics().cap_source is None


GHCR_DOCUMENTED = RateCap(2000, 60.0)


@pytest.mark.parametrize(
    ("source", "current", "announced", "adopt"),
    [
        pytest.param("configured", RateCap(3000, 60.0), RateCap(100, 10.0), False,
                     id="configured-beats-lower-announcement"),
        pytest.param("configured", RateCap(10, 60.0), RateCap(2000, 60.0), False,
                     id="configured-beats-higher-announcement"),
        pytest.param("documented", GHCR_DOCUMENTED, RateCap(100, 10.0), True,
                     id="lower-announcement-beats-documented"),
        pytest.param("documented", GHCR_DOCUMENTED, RateCap(2000, 60.0), False,
                     id="same-as-documented"),
        pytest.param("documented", GHCR_DOCUMENTED, RateCap(600, 6.0), False,
                     id="higher-announcement-keeps-documented"),
        pytest.param(None, None, RateCap(100, 10.0), True, id="no-cap-adopts"),
        pytest.param("announced", RateCap(100, 10.0), RateCap(100, 10.0), False, id="already-adopted"),
        pytest.param("announced", RateCap(100, 10.0), RateCap(50, 10.0), True, id="announcement-changes"),
        pytest.param("estimated", RateCap(40, 1.0), RateCap(100, 2.0), True, id="announcement-beats-estimate"),
    ],
)
def test_cap_precedence_configured_then_lower_announced_then_documented(
    source: str | None, current: RateCap | None, announced: RateCap, adopt: bool
) -> None:
    assert adopts_announced_cap(source, current, announced) is adopt


async def test_lower_announced_cap_replaces_the_documented_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GHCR's profile documents 2000/60s; a registry announcing 100/10s in its 429s is
    believed from the first throttle on, and a later higher announcement does not undo it
    beyond the documented figure; a configured cap still ignores both."""
    documented = PrincipalController(
        "p", window_groups=GHCR_GROUPS, cap=GHCR_DOCUMENTED, cap_source="documented"
    )
    assert documented.statistics().cap_source == "documented"
    async with documented.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(0.5, "429 TOOMANYREQUESTS", RateCap(100, 10.0)))
    stats = documented.statistics()
    assert documented.cap == RateCap(100, 10.0)
    assert stats.cap_source == "announced" and stats.learned_cap
    assert stats.bucket_rate is not None and stats.bucket_rate < 100 / 10.0
    # pacing now follows 100/10s: never 100 admissions within 10 s of (mock) time
    start = trio.current_time()
    for _ in range(100):
        async with documented.permit("blob_get") as permit:
            permit.succeeded()
    assert trio.current_time() - start >= 10.0

    higher = PrincipalController(
        "q", window_groups=GHCR_GROUPS, cap=GHCR_DOCUMENTED, cap_source="documented"
    )
    async with higher.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(0.5, "429", RateCap(6000, 60.0)))
    assert higher.cap == GHCR_DOCUMENTED and higher.statistics().cap_source == "documented"

    configured = PrincipalController("r", window_groups=GHCR_GROUPS, cap=RateCap(3000, 60.0))
    async with configured.permit("blob_get") as permit:
        permit.throttled(ThrottleSignal(0.5, "429", RateCap(100, 10.0)))
    assert configured.cap == RateCap(3000, 60.0)
    assert configured.statistics().cap_source == "configured"


def test_registry_configured_cap_replaces_a_documented_one() -> None:
    registry = ControllerRegistry()
    a = registry.controller_for("h|u", window_groups=GHCR_GROUPS, cap=GHCR_DOCUMENTED,
                                cap_source="documented")
    assert a.cap_source == "documented"
    registry.controller_for("h|u", window_groups=GHCR_GROUPS, cap=RateCap(3000, 60.0))
    assert a.cap == RateCap(3000, 60.0) and a.cap_source == "configured"
