"""The pull quota (Docker Hub's ratelimit headers): the header parser, the pure budget
machine, and the trio planner that hands pulls to images in discovery order (MockClock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ocync.engine.pullplan import ImagePulls, PullPlanner
from ocync.errors import PullQuotaExhausted
from ocync.ratelimit.pullquota import PullQuota
from ocync.ratelimit.signals import PullQuotaReading, pull_quota_from_headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600",
             "docker-ratelimit-source": "192.0.2.1"},
            PullQuotaReading(76, 100, 21600.0, "192.0.2.1"), id="docker-hub-docs-example",
        ),
        pytest.param({"RateLimit-Remaining": "0;w=3600", "RateLimit-Limit": "10;w=3600"},
                     PullQuotaReading(0, 10, 3600.0), id="capitalised-exhausted"),
        pytest.param({"ratelimit-remaining": "5"}, PullQuotaReading(5), id="bare-number"),
        pytest.param({"ratelimit-limit": "100;w=21600"}, None, id="limit-without-remaining"),
        pytest.param({"ratelimit-remaining": "lots"}, None, id="garbage"),
        pytest.param({}, None, id="unlimited-account-sends-none"),
    ],
)
def test_pull_quota_from_headers(headers: dict[str, str], expected: PullQuotaReading | None) -> None:
    assert pull_quota_from_headers(headers) == expected


def reading(remaining: int) -> PullQuotaReading:
    return PullQuotaReading(remaining, 100, 21600.0, "192.0.2.1")


def test_unknown_quota_lets_pulls_go_until_a_reading_arrives() -> None:
    quota = PullQuota(min_remaining=2)
    assert not quota.known and quota.available() is None and quota.reserve(50)
    quota.release(50)
    ticket = quota.ticket()
    quota.observe(ticket, reading(5), 0.0, ok=True)
    assert quota.known and quota.available() == 3 and quota.remaining == 5
    assert quota.describe() == "pull quota: 5 remaining, min_remaining 2"
    assert quota.window_reset_by() == 21600.0


def test_reservations_and_sends_never_go_below_min_remaining() -> None:
    quota = PullQuota(min_remaining=1)
    quota.observe(quota.ticket(), reading(4), 0.0, ok=True)
    assert quota.reserve(2) and not quota.reserve(2) and quota.available() == 1
    first, second = quota.send(), quota.send()  # the two reserved
    assert first is not None and second is not None
    unreserved = quota.send()  # the one free pull
    assert unreserved is not None and quota.available() == 0
    assert quota.send() is None and quota.refused == 1  # would leave less than min_remaining
    quota.answered(first, reading(3), 1.0, ok=True)
    quota.answered(unreserved, None, 1.0, ok=False)  # lost: counted as spent
    assert quota.statistics().in_flight == 1 and quota.available() == 0


def test_out_of_order_readings_keep_the_lower_figure() -> None:
    quota = PullQuota()
    quota.observe(quota.ticket(), reading(10), 0.0, ok=True)
    a, b = quota.send(), quota.send()
    assert a is not None and b is not None
    quota.answered(b, reading(8), 1.0, ok=True)  # b was counted second at the server
    quota.answered(a, reading(9), 1.0, ok=True)  # a's older figure arrives late
    assert quota.remaining == 8
    later = quota.ticket()  # sent after the last figure arrived: the window may have rolled
    quota.observe(later, reading(60), 2.0, ok=True)
    assert quota.remaining == 60


def test_an_answer_without_headers_means_unlimited() -> None:
    quota = PullQuota()
    quota.observe(quota.ticket(), None, 0.0, ok=False)  # an error answer says nothing
    assert not quota.known
    quota.observe(quota.ticket(), None, 0.0, ok=True)
    assert quota.known and quota.available() is None and quota.statistics().unlimited
    assert quota.send() is not None


def test_negative_min_remaining_is_refused() -> None:
    with pytest.raises(ValueError, match="min_remaining"):
        PullQuota(min_remaining=-1)


def known_quota(remaining: int, min_remaining: int = 0) -> PullQuota:
    quota = PullQuota(min_remaining)
    quota.observe(quota.ticket(), reading(remaining), 0.0, ok=True)
    return quota


async def test_images_take_their_turn_in_discovery_order(autojump_clock: trio.testing.MockClock) -> None:
    planner = PullPlanner(known_quota(3))
    first, second = ImagePulls(planner, 1), ImagePulls(planner, 2)
    order: list[str] = []

    async def later_image() -> None:
        await second.reserve(1)
        order.append("second reserved")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later_image)
        await trio.testing.wait_all_tasks_blocked()
        assert order == []  # the earlier image has not settled its pulls
        await first.reserve(1)
        order.append("first reserved")
        await first.reserve(1)  # its index's child
        first.settle()
    assert order == ["first reserved", "second reserved"]
    assert planner.quota.available() == 0


async def test_children_that_do_not_fit_defer_the_image_and_count_the_wasted_root(autojump_clock: trio.testing.MockClock) -> None:
    planner = PullPlanner(known_quota(3, min_remaining=1))
    image = ImagePulls(planner, 1)
    await image.reserve(1)
    image.started += 1
    with pytest.raises(PullQuotaExhausted, match=r"needs 2 more pull\(s\): pull quota: 3 remaining, min_remaining 1"):
        await image.reserve(2)
    image.finish()
    assert planner.statistics().images_deferred == 1 and planner.statistics().pulls_wasted == 1
    assert planner.quota.statistics().reserved == 1  # the root's, until its GET is sent


async def test_an_unknown_quota_is_probed_once_before_the_first_pull(autojump_clock: trio.testing.MockClock) -> None:
    quota = PullQuota()
    planner = PullPlanner(quota)
    probes: list[int] = []
    autojump_clock.jump(100.0)

    async def probe() -> None:
        probes.append(1)
        await trio.sleep(0.5)  # the HEAD's round trip
        quota.observe(quota.ticket(), reading(1), trio.current_time(), ok=True)

    first, second = ImagePulls(planner, 1), ImagePulls(planner, 2)
    await first.reserve(1, probe)
    first.settle()
    with pytest.raises(PullQuotaExhausted):
        await second.reserve(1, probe)
    assert probes == [1]
    assert quota.window_reset_by() == pytest.approx(trio.current_time() + 21600.0)


async def test_a_finished_image_gives_back_what_it_never_began(autojump_clock: trio.testing.MockClock) -> None:
    planner = PullPlanner(known_quota(5))
    image = ImagePulls(planner, 1)
    await image.reserve(3)
    image.started += 1
    image.finish()
    assert planner.quota.statistics().reserved == 1 and planner.quota.available() == 4
