"""Absolute reset times from a registry are honoured: GitHub's epoch ``x-ratelimit-reset`` and
an HTTP-date ``Retry-After`` (RFC 9110 10.2.3) are read against the client's wall clock, and the
wait until then runs on trio's clock (MockClock here, so no real time passes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest
import trio
import trio.testing

from ocync.registry.client import ClientSettings, RegistryClient

# A fixed Unix time for the fake wall clock: the registry and the client agree on it.
EPOCH = 1_800_000_000.0
# How far ahead the registry puts its reset: well above the ~0.25-0.5 s backoff used when the
# reset cannot be read, and below the controller's longest honoured hint (300 s).
RESET_IN = 120
TAGS = json.dumps({"name": "o/a", "tags": ["a"]}).encode()


def wall_clock() -> float:
    return EPOCH + trio.current_time()


def exhausted_budget(status: int) -> httpx.Response:
    """GitHub's primary budget, spent: remaining 0, reset at an epoch second."""
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(wall_clock()) + RESET_IN),
    }
    if status == 200:
        return httpx.Response(200, headers=headers, content=TAGS)
    body = {"message": "API rate limit exceeded"}
    return httpx.Response(status, headers=headers, json=body)


def retry_after_date(status: int) -> httpx.Response:
    """A throttle whose Retry-After is an HTTP-date, with no Date header to compare it to."""
    when = formatdate(wall_clock() + RESET_IN, usegmt=True)
    return httpx.Response(status, headers={"Retry-After": when}, json={"errors": [{"code": "TOOMANYREQUESTS"}]})


@pytest.mark.parametrize(
    "first_answer",
    [
        pytest.param(lambda: exhausted_budget(200), id="200-budget-exhausted-epoch-reset"),
        pytest.param(lambda: exhausted_budget(403), id="403-budget-exhausted-epoch-reset"),
        pytest.param(lambda: retry_after_date(429), id="429-retry-after-http-date"),
        pytest.param(lambda: retry_after_date(503), id="503-toomanyrequests-retry-after-http-date"),
    ],
)
async def test_next_request_waits_until_the_registry_reset_time(
    autojump_clock: trio.testing.MockClock, first_answer: Callable[[], httpx.Response]
) -> None:
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(trio.current_time())
        if len(sent_at) == 1:
            return first_answer()
        return httpx.Response(200, content=TAGS)

    options = ClientSettings()
    async with RegistryClient(
        "reg.test", options, transport=httpx.MockTransport(handler), seed=1, wall_clock=wall_clock
    ) as c:
        assert await c.list_tags("o/a") == ["a"]
        assert await c.list_tags("o/a") == ["a"]
    assert len(sent_at) >= 2, sent_at
    delay = sent_at[1] - sent_at[0]
    # The reset is an epoch second / an HTTP-date (1 s resolution): at most 1 s early.
    assert delay >= RESET_IN - 1, f"retried after {delay:.3f} s, the registry said {RESET_IN} s"
    # ... and not much later than the registry asked (the controller adds a small margin).
    assert delay <= RESET_IN + 1, f"retried after {delay:.3f} s, the registry said {RESET_IN} s"


async def test_wall_clock_defaults_to_unix_time() -> None:
    c = RegistryClient("reg.test", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert abs(c._wall_clock() - time.time()) < 60
