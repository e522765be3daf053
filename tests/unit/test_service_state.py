"""Liveness and readiness decided from the loop's state (no server, ``now`` given)."""

from __future__ import annotations

from ocync.service.state import ServiceState


def test_readiness_through_a_service_life() -> None:
    s = ServiceState(period=1.0, unready_after=3)
    assert s.readiness().reason == {"status": "first_cycle_pending"}
    s.cycle_started(0.0)
    s.cycle_finished(1.0, fatal="registry src: connection refused")
    assert s.readiness().status == 503 and s.readiness().reason["status"] == "failing"
    s.cycle_finished(2.0)
    assert s.readiness().status == 200
    s.config_error = "ocync.yaml:3: invalid YAML"
    assert s.readiness().reason == {"status": "config_invalid", "error": "ocync.yaml:3: invalid YAML"}
    s.config_error = ""
    for t in (3.0, 4.0):
        s.cycle_finished(t, fatal="down")
        assert s.readiness().status == 200, "fewer than K failures: still ready"
    s.cycle_finished(5.0, fatal="down")
    assert s.readiness().reason == {"status": "failing", "consecutive_failures": 3, "error": "down"}
    s.cycle_finished(6.0)
    assert s.readiness().status == 200
    s.draining = True
    assert s.readiness().reason == {"status": "draining"}


def test_liveness_window_is_max_of_three_periods_and_the_floor() -> None:
    s = ServiceState(period=100.0, liveness_floor=60.0)
    s.cycle_started(0.0)
    assert s.liveness(300.0).ok and not s.liveness(300.1).ok
    s.progressed(250.0)  # a request answered: the cycle is not wedged
    assert s.liveness(500.0).ok
    short = ServiceState(period=1.0, liveness_floor=60.0)
    short.cycle_started(0.0)
    assert short.liveness(60.0).ok and short.liveness(61.0).reason["status"] == "wedged"


def test_a_long_backoff_wait_is_not_a_wedge() -> None:
    s = ServiceState(period=1.0, liveness_floor=10.0)
    s.cycle_started(0.0)
    s.cycle_finished(1.0, fatal="down")
    s.next_start = 301.0  # backing off for 300 s
    assert s.liveness(305.0).ok
    assert not s.liveness(312.0).ok  # the planned start is long past: wedged
