"""Prometheus metrics of the service, fed from each cycle's ``RunReport`` and the long-lived
controllers' ``statistics()``. Labels are config names (registries, principals, window keys) and
fixed words, never repository or tag names, so cardinality stays bounded by the config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ocync.engine.cache import CacheStatistics
from ocync.engine.report import ImageStatus, RunReport
from ocync.errors import OcyncError
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.statistics import ControllerStatistics

CYCLE_OUTCOMES = ("ok", "partial", "failed", "interrupted")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Cycles range from a second (nothing to do) to hours (a first sync of a large mirror).
CYCLE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
IMAGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)
# a blob: from a few milliseconds (a small layer on loopback) to minutes (GiB layers over a WAN)
BLOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def status_class(status: str) -> str:
    """``"404"`` -> ``"4xx"``; no status (connection error, timeout) -> ``"error"``."""
    return f"{status[0]}xx" if len(status) == 3 and status.isdigit() else "error"


def target_registry(target: str) -> str:
    """The registry name of an ``ImageResult.target`` (``"dst/mirror/alpine:3"`` -> ``"dst"``)."""
    return target.split("/", 1)[0]


class _LiveCollector(Collector):
    """Gauges read at scrape time: each principal's AIMD windows and cap, and the cache size."""

    def __init__(
        self,
        controllers: Callable[[], Iterable[ControllerStatistics]],
        cache: Callable[[], CacheStatistics | None],
    ) -> None:
        self._controllers = controllers
        self._cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        window = GaugeMetricFamily(
            "ocync_principal_window", "AIMD concurrency window of a principal's request kind",
            labels=["principal", "window"])
        cap = GaugeMetricFamily(
            "ocync_principal_cap_requests_per_second",
            "the rate cap applied to a principal (configured, documented or learned)",
            labels=["principal", "source"])
        for stats in self._controllers():
            for key, keystats in stats.windows.items():
                window.add_metric([stats.name, key], keystats.window.window)
            if stats.cap:
                try:
                    rate = parse_rate(stats.cap)
                except OcyncError:
                    continue
                cap.add_metric([stats.name, stats.cap_source or "unknown"], rate.count / rate.period)
        yield window
        yield cap
        cache = self._cache()
        entries = GaugeMetricFamily("ocync_cache_entries", "blob entries in the transfer cache")
        entries.add_metric([], cache.blob_entries if cache is not None else 0)
        yield entries


class ServiceMetrics:
    """The service's own registry (not prometheus_client's global one)."""

    def __init__(
        self,
        controllers: Callable[[], Iterable[ControllerStatistics]] = list,
        cache: Callable[[], CacheStatistics | None] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.images = Counter("ocync_images", "images by outcome per target registry",
                              ["target", "outcome"], registry=r)
        self.blobs = Counter("ocync_blobs", "blobs by action per target registry",
                             ["target", "action"], registry=r)
        self.bytes = Counter("ocync_bytes_copied", "blob bytes copied per target registry",
                             ["target"], registry=r)
        self.requests = Counter("ocync_requests", "requests sent per registry, kind and status class",
                                ["registry", "kind", "status_class"], registry=r)
        self.throttles = Counter("ocync_throttled", "429 answers per principal",
                                 ["principal"], registry=r)
        self.cycles = Counter("ocync_cycles", "cycles by outcome", ["outcome"], registry=r)
        for outcome in CYCLE_OUTCOMES:  # present at 0 from the start: increase() alerts work
            self.cycles.labels(outcome)
        self.rate = Gauge("ocync_principal_requests_per_second",
                          "a principal's request rate over the last cycle", ["principal"], registry=r)
        self.last_success = Gauge("ocync_last_success_timestamp_seconds",
                                  "end of the last cycle without a fatal error", registry=r)
        self.cycle_seconds = Histogram("ocync_cycle_duration_seconds", "cycle duration",
                                       buckets=CYCLE_BUCKETS, registry=r)
        self.image_seconds = Histogram(
            "ocync_image_transfer_duration_seconds",
            "time to copy one image (its blobs, then manifests) to one target",
            buckets=IMAGE_BUCKETS, registry=r)
        self.blob_seconds = Histogram(
            "ocync_blob_transfer_duration_seconds",
            "time to copy one blob from the source to one target (mounts and skips excluded)",
            buckets=BLOB_BUCKETS, registry=r)
        # controllers live across cycles: their counters are cumulative, the metrics add deltas
        self._seen: dict[str, tuple[int, int]] = {}  # principal -> (requests, throttles)
        r.register(_LiveCollector(controllers, cache))

    def record_blob(self, size: int, seconds: float) -> None:
        """One blob copied (``RunOptions.on_blob``); its size is not a label (unbounded)."""
        self.blob_seconds.observe(seconds)

    def record_report(self, report: RunReport, seconds: float) -> None:
        for result in report.results:
            target = target_registry(result.target)
            outcome = "failed" if result.status is ImageStatus.INTERRUPTED else result.status.value
            self.images.labels(target, outcome).inc()
            self.blobs.labels(target, "transferred").inc(result.blobs_transferred)
            self.blobs.labels(target, "mounted").inc(result.blobs_mounted)
            self.blobs.labels(target, "present").inc(result.blobs_skipped)
            self.bytes.labels(target).inc(result.bytes_transferred)
            if result.status is ImageStatus.SYNCED:
                self.image_seconds.observe(result.seconds)
        for registry, stats in report.controllers.items():
            if registry.startswith("_") or not isinstance(stats, dict):
                continue
            by_kind_status: dict[str, dict[str, int]] = stats.get("client", {}).get("by_kind_status", {})
            for kind, statuses in by_kind_status.items():
                for status, count in statuses.items():
                    self.requests.labels(registry, kind, status_class(status)).inc(count)
        self.record_controllers(report.principals, seconds)

    def record_controllers(self, principals: Iterable[dict[str, Any]], seconds: float) -> None:
        for p in principals:
            name = str(p["name"])
            requests, throttles = int(p["requests"]), int(p["throttles"])
            before = self._seen.get(name, (0, 0))
            if requests < before[0] or throttles < before[1]:  # a new controller registry
                before = (0, 0)
            self.throttles.labels(name).inc(throttles - before[1])
            self.rate.labels(name).set((requests - before[0]) / seconds if seconds > 0 else 0.0)
            self._seen[name] = (requests, throttles)

    def record_cycle(self, outcome: str, seconds: float, finished_wall: float) -> None:
        self.cycles.labels(outcome).inc()
        self.cycle_seconds.observe(seconds)
        if outcome in ("ok", "partial"):
            self.last_success.set(finished_wall)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "ServiceMetrics", "status_class", "target_registry"]
