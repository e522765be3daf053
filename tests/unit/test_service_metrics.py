"""Metrics from a run report: parsed back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ocync.engine.report import ImageResult, ImageStatus, RunReport
from ocync.service.metrics import ServiceMetrics, status_class


def samples(metrics: ServiceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def report() -> RunReport:
    r = RunReport()
    r.add(ImageResult("m", "src/a/b:1", "dst/mirror/b:1", ImageStatus.SYNCED, "sha256:" + "a" * 64,
                      blobs_transferred=3, blobs_mounted=1, blobs_skipped=2, bytes_transferred=1000,
                      seconds=1.5))
    r.add(ImageResult("m", "src/a/b:2", "dst/mirror/b:2", ImageStatus.FAILED, reason="boom"))
    r.add(ImageResult("m", "src/a/b:3", "ghcr/org/b:3", ImageStatus.SKIPPED))
    r.controllers = {
        "src": {"client": {"by_kind_status": {"manifest_head": {"200": 5, "404": 1}, "ping": {"error": 2}}}},
    }
    r.principals = [{"name": "127.0.0.1:5000|anonymous", "requests": 8, "throttles": 2}]
    return r


def test_report_counters_and_bounded_labels() -> None:
    m = ServiceMetrics()
    m.record_report(report(), seconds=4.0)
    m.record_cycle("ok", 4.0, finished_wall=1_700_000_000.0)
    s = samples(m)
    assert s[("ocync_images_total", frozenset({("target", "dst"), ("outcome", "synced")}))] == 1
    assert s[("ocync_images_total", frozenset({("target", "dst"), ("outcome", "failed")}))] == 1
    assert s[("ocync_images_total", frozenset({("target", "ghcr"), ("outcome", "skipped")}))] == 1
    assert s[("ocync_blobs_total", frozenset({("target", "dst"), ("action", "present")}))] == 2
    assert s[("ocync_bytes_copied_total", frozenset({("target", "dst")}))] == 1000
    key = frozenset({("registry", "src"), ("kind", "manifest_head"), ("status_class", "4xx")})
    assert s[("ocync_requests_total", key)] == 1
    assert s[("ocync_requests_total", frozenset({("registry", "src"), ("kind", "ping"), ("status_class", "error")}))] == 2
    assert s[("ocync_throttled_total", frozenset({("principal", "127.0.0.1:5000|anonymous")}))] == 2
    assert s[("ocync_principal_requests_per_second", frozenset({("principal", "127.0.0.1:5000|anonymous")}))] == 2
    assert s[("ocync_last_success_timestamp_seconds", frozenset())] == 1_700_000_000.0
    assert s[("ocync_cycles_total", frozenset({("outcome", "ok")}))] == 1
    # no label anywhere carries a repository or a tag
    assert not any("mirror/b" in v or "b:1" in v for _, labels in s for _, v in labels)


def test_cumulative_controller_counters_become_deltas() -> None:
    m = ServiceMetrics()
    m.record_controllers([{"name": "p", "requests": 10, "throttles": 3}], 1.0)
    m.record_controllers([{"name": "p", "requests": 14, "throttles": 3}], 2.0)
    s = samples(m)
    assert s[("ocync_throttled_total", frozenset({("principal", "p")}))] == 3
    assert s[("ocync_principal_requests_per_second", frozenset({("principal", "p")}))] == 2


def test_status_class() -> None:
    assert [status_class(x) for x in ("200", "429", "503", "error", "")] == ["2xx", "4xx", "5xx", "error", "error"]
