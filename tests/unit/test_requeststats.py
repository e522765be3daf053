"""The request ledger: every request counted once, and statistics that add up."""

from __future__ import annotations

from ocync.registry.requeststats import ClientStatistics, RequestLedger


def ledger() -> RequestLedger:
    led = RequestLedger()
    led.record("GET", "blob_get", 307)
    led.record("GET", "storage_get", 200, bytes_in=10)
    led.record("PUT", "upload_put", None, bytes_out=5)
    led.throttled, led.retries, led.transport_errors = 1, 2, 1
    return led


def test_ledger_counts_by_kind_status_and_method() -> None:
    s = ledger().statistics(tokens_fetched=3)
    assert s.requests == 3 and s.by_method == {"GET": 2, "PUT": 1}
    assert s.by_kind_status == {"blob_get": {"307": 1}, "storage_get": {"200": 1}, "upload_put": {"error": 1}}
    assert s.by_status == {"307": 1, "200": 1, "error": 1}
    assert (s.bytes_in, s.bytes_out, s.bytes_in_by_kind) == (10, 5, {"storage_get": 10})
    assert (s.throttled, s.retries, s.transport_errors, s.tokens_fetched) == (1, 2, 1, 3)


def test_statistics_add_up_with_sum() -> None:
    one = ledger().statistics(tokens_fetched=1)
    total = sum([one, one, one], ClientStatistics())
    assert total == ClientStatistics.merge([one, one, one])
    assert total.requests == 9 and total.by_kind_status["upload_put"] == {"error": 3}
    assert total.to_dict()["bytes_in_by_kind"] == {"storage_get": 30} and total.tokens_fetched == 3
    assert one + ClientStatistics() == one
