"""Table-driven tests of throttle and budget signal parsing (sans-IO)."""

from __future__ import annotations

import json

import pytest

from ocync.ratelimit.bucket import RateCap
from ocync.ratelimit.signals import (
    ThrottleSignal,
    budget_from_headers,
    parse_go_duration,
    parse_retry_after,
    throttle_signal,
)


def _oci(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


GHCR_429 = _oci("TOOMANYREQUESTS", "retry-after: 10.487765ms, allowed: 2000/minute")


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        pytest.param(
            429,
            {},
            GHCR_429,
            ThrottleSignal(0.010487765, "429 TOOMANYREQUESTS", RateCap(2000, 60.0)),
            id="ghcr-hint-in-message",
        ),
        pytest.param(
            429,
            {"Retry-After": "7"},
            b"",
            ThrottleSignal(7.0, "429 Too Many Requests"),
            id="retry-after-seconds",
        ),
        pytest.param(
            429,
            {
                "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT",
                "date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            b"",
            ThrottleSignal(30.0, "429 Too Many Requests"),
            id="retry-after-http-date",
        ),
        pytest.param(
            429, {}, b"slow down", ThrottleSignal(None, "429 Too Many Requests"), id="bare-429"
        ),
        pytest.param(
            403,
            {},
            json.dumps({"message": "You have exceeded a secondary rate limit."}).encode(),
            ThrottleSignal(None, "403 secondary rate limit"),
            id="github-secondary",
        ),
        pytest.param(
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "12"},
            b"",
            ThrottleSignal(12.0, "403 rate limit budget exhausted"),
            id="github-primary-exhausted",
        ),
        pytest.param(
            503,
            {},
            _oci("SlowDown", "Please reduce your request rate."),
            ThrottleSignal(None, "503 SLOWDOWN"),
            id="s3-slowdown",
        ),
        pytest.param(
            429,
            {"Retry-After": "3"},
            _oci("TOOMANYREQUESTS", "retry-after: 1.5s"),
            ThrottleSignal(1.5, "429 TOOMANYREQUESTS"),
            id="message-hint-wins",
        ),
        pytest.param(
            429,
            {},
            _oci("TOOMANYREQUESTS", "retry-after: 1m0.5s"),
            ThrottleSignal(60.5, "429 TOOMANYREQUESTS"),
            id="compound-go-duration",
        ),
    ],
)
def test_throttle_signal(
    status: int, headers: dict[str, str], body: bytes, expected: ThrottleSignal
) -> None:
    signal = throttle_signal(status, headers, body)
    assert signal is not None
    assert signal.reason == expected.reason
    assert signal.allowed == expected.allowed
    if expected.retry_after is None:
        assert signal.retry_after is None
    else:
        assert signal.retry_after == pytest.approx(expected.retry_after)


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        pytest.param(200, {"retry-after": "5"}, b"", id="ok"),
        pytest.param(404, {}, _oci("MANIFEST_UNKNOWN", "manifest unknown"), id="not-found"),
        pytest.param(
            403, {}, _oci("DENIED", "requested access to the resource is denied"), id="denied"
        ),
        pytest.param(500, {"retry-after": "5"}, b"oops", id="server-error"),
        pytest.param(403, {"x-ratelimit-remaining": "10"}, b"", id="403-with-budget-left"),
    ],
)
def test_not_a_throttle(status: int, headers: dict[str, str], body: bytes) -> None:
    assert throttle_signal(status, headers, body) is None


@pytest.mark.parametrize(
    ("headers", "now", "expected"),
    [
        pytest.param({"ratelimit-remaining": "76;w=21600"}, None, (76, None), id="docker-hub"),
        pytest.param(
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000060"},
            1700000000.0,
            (0, 60.0),
            id="github-epoch-reset",
        ),
        pytest.param(
            {"x-ratelimit-remaining": "3", "x-ratelimit-reset": "1700000060"},
            None,
            (3, None),
            id="epoch-reset-without-now",
        ),
        pytest.param(
            {"ratelimit-remaining": "5", "ratelimit-reset": "2.5"}, None, (5, 2.5), id="delta-reset"
        ),
        pytest.param(
            {"RateLimit": "limit=100, remaining=50, reset=5"}, None, (50, 5.0), id="ietf-draft"
        ),
        pytest.param({"ratelimit": '"default";r=7;t=30'}, None, (7, 30.0), id="ietf-structured"),
        pytest.param({"content-type": "text/plain"}, None, None, id="none"),
        pytest.param({"ratelimit-remaining": "garbage"}, None, None, id="garbage"),
    ],
)
def test_budget_from_headers(
    headers: dict[str, str], now: float | None, expected: tuple[int, float | None] | None
) -> None:
    assert budget_from_headers(headers, now=now) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("10.487765ms", 0.010487765, id="ms"),
        pytest.param("1m0.5s", 60.5, id="compound"),
        pytest.param("2h", 7200.0, id="hours"),
        pytest.param("300ns", 3e-7, id="ns"),
        pytest.param("1.5µs", 1.5e-6, id="micro"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("", None, id="empty"),
        pytest.param("10 ms", None, id="space"),
        pytest.param("ms", None, id="unit-only"),
        pytest.param("5x", None, id="bad-unit"),
    ],
)
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    result = parse_go_duration(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_parse_retry_after_http_date_against_now_and_garbage() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == pytest.approx(
        30.0
    )
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT") is None  # no reference clock
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0


def test_deeply_nested_429_body_is_still_a_throttle() -> None:
    # A hostile or broken body must not escape as RecursionError (found by hardening).
    signal = throttle_signal(429, {}, b"[" * 30000)
    assert signal is not None
    assert signal.retry_after is None
