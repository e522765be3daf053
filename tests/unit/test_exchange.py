"""The request core's rules, event by event with no event loop (h11's way of testing its
``Connection``): what :class:`Exchange` answers to transport errors and to responses."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from ocync.errors import (
    ConnectError,
    NotAnswering,
    RegistryError,
    RequestTimeout,
    StaleToken,
    Throttled,
    TransportError,
)
from ocync.registry.exchange import (
    MAX_REDIRECTS,
    MAX_THROTTLE_RETRIES,
    Deliver,
    Exchange,
    Fail,
    Follow,
    HostSilence,
    Reauthenticate,
    Retry,
    WaitThrottle,
)

BASE = "https://reg.test"
BLOB = f"{BASE}/v2/o/a/blobs/sha256:ab"


@dataclass(frozen=True)
class Answer:
    """One response as the exchange sees it."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    sent_token: str | None = None
    learned: bool = False
    bearer: bool = True


def exchange(**kw: object) -> Exchange:
    options: dict[str, object] = {"base_url": BASE, "rng": random.Random(1), "attempts": 5}
    options.update(kw)
    url = str(options.pop("url", BLOB))
    kind = str(options.pop("kind", "blob_get"))
    return Exchange(kind, "GET", url, **options)  # type: ignore[arg-type]


def feed(ex: Exchange, event: Answer | TransportError) -> object:
    if isinstance(event, TransportError):
        return ex.on_transport_error(event)
    return ex.on_response(event.status, dict(event.headers), sent_token=event.sent_token,
                          learned=event.learned, bearer=event.bearer, now=1000.0)


def names(actions: list[object]) -> list[str]:
    return [type(a).__name__ for a in actions]


REFUSED = ConnectError("reg.test: connection refused (GET /v2/)")
SILENT = RequestTimeout("reg.test: no answer within 60 s (GET /v2/)")
LOCATION = (("location", "https://storage.test/b?sig=1"),)


@pytest.mark.parametrize(
    ("options", "events", "expected"),
    [
        pytest.param({}, [Answer(200)], ["Deliver"], id="success"),
        pytest.param({}, [Answer(404)], ["Deliver"], id="an-error-status-is-the-callers"),
        pytest.param({}, [Answer(503)] * 4 + [Answer(200)], ["Retry"] * 4 + ["Deliver"], id="5xx-retried"),
        pytest.param({}, [Answer(503)] * 5, ["Retry"] * 4 + ["Deliver"], id="5xx-attempts-run-out"),
        pytest.param({"ok": (200, 503)}, [Answer(503)], ["Deliver"], id="5xx-in-ok-delivered"),
        pytest.param({"replayable": False}, [Answer(502)], ["Deliver"], id="5xx-streamed-body-not-resent"),
        pytest.param({}, [REFUSED] * 4 + [Answer(200)], ["Retry"] * 4 + ["Deliver"], id="connect-errors-retried"),
        pytest.param({}, [REFUSED] * 5, ["Retry"] * 4 + ["Fail"], id="connect-attempts-run-out"),
        pytest.param({"replayable": False}, [REFUSED], ["Fail"], id="streamed-body-fails-at-once"),
        pytest.param({}, [SILENT, Answer(200)], ["Retry", "Deliver"], id="timeout-retried-once"),
        pytest.param({}, [SILENT, SILENT], ["Retry", "Fail"], id="two-timeouts-give-up"),
        pytest.param({}, [Answer(429)] * 3 + [Answer(200)], ["WaitThrottle"] * 3 + ["Deliver"], id="throttles-waited"),
        pytest.param({}, [Answer(429)] * (MAX_THROTTLE_RETRIES + 1),
                     ["WaitThrottle"] * MAX_THROTTLE_RETRIES + ["Fail"], id="throttled-too-often"),
        pytest.param({"replayable": False}, [Answer(429)], ["WaitThrottle"], id="throttle-streamed-waits-then-raises"),
        pytest.param({}, [Answer(401, learned=True), Answer(200, sent_token="t1")],
                     ["Reauthenticate", "Deliver"], id="first-contact-challenge"),
        pytest.param({}, [Answer(401, learned=False)], ["Deliver"], id="401-without-usable-challenge"),
        pytest.param({}, [Answer(401, sent_token="t1"), Answer(401, sent_token="t2")],
                     ["Reauthenticate", "Deliver"], id="token-refreshed-once"),
        pytest.param({"authenticate": False}, [Answer(401, learned=True)], ["Deliver"], id="token-endpoint-401"),
        pytest.param({"follow": True}, [Answer(307, LOCATION), Answer(200)], ["Follow", "Deliver"], id="redirect"),
        pytest.param({}, [Answer(307, LOCATION)], ["Deliver"], id="redirect-not-followed"),
        pytest.param({"follow": True}, [Answer(307)], ["Deliver"], id="redirect-without-location"),
        pytest.param({"follow": True}, [Answer(302, (("location", f"{BASE}/next"),))] * (MAX_REDIRECTS + 1),
                     ["Follow"] * MAX_REDIRECTS + ["Fail"], id="too-many-redirects"),
    ],
)
def test_actions(options: dict[str, object], events: list[Answer | TransportError], expected: list[str]) -> None:
    ex = exchange(**options)
    assert names([feed(ex, e) for e in events]) == expected, ex


def test_backoff_doubles_with_half_jitter() -> None:
    ex = exchange()
    delays = [feed(ex, REFUSED) for _ in range(4)]
    assert all(isinstance(d, Retry) for d in delays)
    for attempt, action in enumerate(delays, 1):
        ceiling = min(10.0, 0.2 * 2 ** (attempt - 1))
        assert isinstance(action, Retry) and ceiling / 2 <= action.delay <= ceiling


def test_redirect_to_storage_is_counted_as_storage_get() -> None:
    ex = exchange(kind="manifest_get", follow=True, url=f"{BASE}/v2/o/a/manifests/t")
    same = feed(ex, Answer(307, (("location", "/v2/o/a/manifests/sha256:cd"),)))
    assert same == Follow(f"{BASE}/v2/o/a/manifests/sha256:cd", "manifest_get")
    away = feed(ex, Answer(307, LOCATION))
    assert away == Follow("https://storage.test/b?sig=1", "storage_get")
    assert not ex.same_origin  # no credentials to the storage host
    assert ex.statistics().redirects == 2


def test_blob_redirect_is_storage_get_even_on_the_same_origin() -> None:
    ex = exchange(follow=True)
    assert feed(ex, Answer(307, (("location", "/storage/x"),))) == Follow(f"{BASE}/storage/x", "storage_get")


def test_a_401_from_another_origin_is_delivered() -> None:
    ex = exchange(follow=True)
    feed(ex, Answer(307, LOCATION))
    assert isinstance(feed(ex, Answer(401, learned=True)), Deliver)


@pytest.mark.parametrize(
    ("bearer", "stale"),
    [pytest.param(True, "t1", id="bearer-refreshes-the-token"), pytest.param(False, None, id="basic-resends")],
)
def test_reauthenticate_names_the_stale_token(bearer: bool, stale: str | None) -> None:
    ex = exchange()
    assert feed(ex, Answer(401, sent_token="t1", bearer=bearer)) == Reauthenticate(stale)


def test_streamed_body_401_refreshes_then_restarts() -> None:
    action = feed(exchange(replayable=False), Answer(401, sent_token="t1"))
    assert isinstance(action, Reauthenticate) and action.stale == "t1"
    assert isinstance(action.error, StaleToken)
    assert str(action.error) == f"GET {BLOB}: token rejected mid-transfer; restarting"


def test_throttle_carries_the_signal_and_its_count() -> None:
    ex = exchange()
    first = feed(ex, Answer(429, (("retry-after", "7"),)))
    second = feed(ex, Answer(429, (("retry-after", "7"),)))
    assert isinstance(first, WaitThrottle) and first.signal.retry_after == 7 and first.throttles == 1
    assert isinstance(second, WaitThrottle) and second.throttles == 2 and second.error is None
    assert ex.signal is not None


def test_throttle_reset_read_against_now() -> None:
    """GitHub's epoch ``x-ratelimit-reset`` is read against the ``now`` passed in."""
    ex = exchange()
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000120"}
    action = ex.on_response(403, headers, now=1_700_000_000.0)
    assert isinstance(action, WaitThrottle) and action.signal.retry_after == pytest.approx(120)


def test_throttled_too_often_names_the_url_without_its_query() -> None:
    ex = exchange(url=f"{BASE}/v2/o/a/manifests/t?secret=1")
    for _ in range(MAX_THROTTLE_RETRIES):
        feed(ex, Answer(429))
    action = feed(ex, Answer(429))
    assert isinstance(action, Fail) and isinstance(action.error, Throttled)
    assert str(action.error) == (
        f"{BASE}/v2/o/a/manifests/t: still throttled after {MAX_THROTTLE_RETRIES + 1} waits (429 Too Many Requests) (GET)"
    )


def test_too_many_redirects_error() -> None:
    ex = exchange(follow=True)
    for _ in range(MAX_REDIRECTS):
        feed(ex, Answer(302, (("location", BLOB),)))
    action = feed(ex, Answer(302, (("location", BLOB),)))
    assert isinstance(action, Fail) and isinstance(action.error, RegistryError)
    assert str(action.error) == f"GET {BLOB}: too many redirects" and action.error.status == 302


def test_frozen_host_given_up_across_exchanges() -> None:
    """The silence counter is the host's, shared by every exchange: two timeouts in a row
    give the host up, and every later exchange is refused before it sends."""
    silence = HostSilence(limit=2)
    first = exchange(silence=silence)
    assert isinstance(feed(first, SILENT), Retry)
    gave_up = feed(first, SILENT)
    assert isinstance(gave_up, Fail) and isinstance(gave_up.error, NotAnswering)
    assert gave_up.cause is SILENT
    later = exchange(silence=silence)
    refused = later.refusal()
    assert isinstance(refused, NotAnswering)
    assert str(refused) == ("reg.test: stopped answering (nothing received for 60 s, 2 times in a row); "
                            "given up for this run (GET /v2/o/a/blobs/sha256:ab)")


def test_given_up_on_a_retryable_attempt_says_so() -> None:
    silence = HostSilence(limit=1)
    action = feed(exchange(silence=silence, read_timeout=5), SILENT)
    assert isinstance(action, Fail) and isinstance(action.error, NotAnswering)
    assert "nothing received for 5 s, 1 times in a row" in str(action.error)


def test_an_answer_resets_the_silence() -> None:
    silence = HostSilence(limit=2)
    ex = exchange(silence=silence)
    feed(ex, SILENT)
    feed(ex, Answer(200))
    assert silence.in_a_row == 0 and ex.refusal() is None


def test_statistics_and_repr() -> None:
    ex = exchange(follow=True)
    feed(ex, Answer(503))
    feed(ex, Answer(429))
    feed(ex, Answer(307, LOCATION))
    s = ex.statistics()
    assert (s.attempts, s.throttles, s.redirects, s.kind) == (1, 1, 1, "storage_get")
    assert "sig=1" not in repr(ex) and "storage_get" in repr(ex)
