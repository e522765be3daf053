"""The service's HTTP routes: ``/healthz`` (liveness), ``/readyz`` (readiness, with a JSON
reason) and ``/metrics`` (Prometheus text exposition), answered from the loop's state.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ocync.service.health import Response, Router
from ocync.service.metrics import CONTENT_TYPE, ServiceMetrics
from ocync.service.state import ServiceState, Verdict


def _json(verdict: Verdict) -> Response:
    return Response(verdict.status, json.dumps(verdict.reason, sort_keys=True).encode() + b"\n")


def make_router(state: ServiceState, metrics: ServiceMetrics, now: Callable[[], float]) -> Router:
    def route(method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, b'{"error": "method not allowed"}\n')
        if path == "/healthz":
            return _json(state.liveness(now()))
        if path == "/readyz":
            return _json(state.readiness())
        if path == "/metrics":
            return Response(200, metrics.exposition(), CONTENT_TYPE)
        return Response(404, b'{"error": "not found"}\n')

    return route


__all__ = ["make_router"]
