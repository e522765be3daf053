"""The rate controller's acceptance scenarios (stress/ratelimit_scenarios.py) simulated on
trio's MockClock: PrincipalControllers against the mock's own sliding-window limiter
(mockregistry.ratelimit), with seeded network latency and jitter.

Deterministic and fast (no sockets, no real sleeps); tests/integration/test_ratelimit_scenarios.py
runs the same scenarios over real sockets through the client.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from mockregistry.quirks import RateLimit
from mockregistry.ratelimit import SlidingWindowLimiter
from ocync.ratelimit.bucket import RateCap
from ocync.ratelimit.limiter import PrincipalController
from ocync.ratelimit.signals import throttle_signal


@dataclass
class Outcome:
    accepted: int
    throttled: int
    seconds: float
    window_min: float

    @property
    def throttled_pct(self) -> float:
        return 100.0 * self.throttled / (self.accepted + self.throttled)

    def utilisation(self, cap: RateCap) -> float:
        return self.accepted / self.seconds / cap.rate


def _body(retry_after: float, cap: RateCap | None) -> bytes:
    message = f"retry-after: {retry_after * 1000:.6f}ms"
    if cap is not None:
        message += f", allowed: {cap.count}/{cap.period:g}s"
    return json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": message}]}).encode()


async def _drive(
    server: SlidingWindowLimiter,
    controller: PrincipalController,
    *,
    operations: int,
    tasks: int,
    rng: random.Random,
    announce: RateCap | None,
    counts: list[int],
    jitter: float,
) -> None:
    """``tasks`` workers, each request: permit -> latency -> server decision -> latency."""
    remaining = [operations]

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            attempt = 0
            while True:
                attempt += 1
                async with controller.permit("blob_get") as permit:
                    await trio.sleep(0.001 + rng.random() * jitter)  # to the server
                    decision = server.check("alice", trio.current_time())
                    await trio.sleep(0.001 + rng.random() * jitter)
                    if decision.allowed:
                        counts[0] += 1
                        permit.succeeded()
                        signal = None
                    else:
                        counts[1] += 1
                        signal = throttle_signal(429, {}, _body(decision.retry_after, announce))
                        assert signal is not None
                        permit.throttled(signal)
                if signal is None:
                    break
                await controller.wait_after_throttle(signal, attempt)

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)


def _run(
    *,
    server_cap: RateCap,
    configured: RateCap | None,
    announce: bool,
    operations: int,
    estimate: bool = True,
    tasks: int = 8,
    processes: int = 1,
    seed: int = 1,
    jitter: float = 0.004,
) -> Outcome:
    async def main() -> Outcome:
        server = SlidingWindowLimiter(RateLimit(server_cap.count, server_cap.period))
        counts = [0, 0]
        controllers = [
            PrincipalController(
                "alice",
                window_groups={},
                cap=configured,
                rate_share=1.0 / processes,
                adopt_announced_cap=announce,
                estimate_cap=estimate,
                seed=seed + i,
            )
            for i in range(processes)
        ]
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i, controller in enumerate(controllers):
                nursery.start_soon(
                    lambda c=controller, i=i: _drive(
                        server,
                        c,
                        operations=operations // processes,
                        tasks=tasks,
                        rng=random.Random(seed * 100 + i),
                        announce=server_cap,
                        counts=counts,
                        jitter=jitter,
                    )
                )
        seconds = trio.current_time() - start
        window_min = min(w.window.min for c in controllers for w in c.statistics().windows.values())
        return Outcome(counts[0], counts[1], seconds, window_min)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


CAP = RateCap(600, 6.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_cap_never_throttled_and_near_the_cap(seed: int) -> None:
    outcome = _run(server_cap=CAP, configured=CAP, announce=True, operations=3000, seed=seed)
    assert outcome.throttled == 0, f"seed={seed}"
    assert outcome.accepted == 3000
    assert outcome.utilisation(CAP) >= 0.90, f"seed={seed}: {outcome}"


@pytest.mark.parametrize("jitter", [0.05, 0.2])
def test_known_cap_tolerates_network_jitter_within_the_headroom(jitter: float) -> None:
    """Latency to the server varying by up to ``jitter``, below the 4% headroom's 0.24 s at
    600/6s: a sliding window still never overflows."""
    outcome = _run(
        server_cap=CAP, configured=CAP, announce=True, operations=3000, tasks=32, jitter=jitter
    )
    assert outcome.throttled == 0, outcome
    assert outcome.utilisation(CAP) >= 0.90, outcome


@pytest.mark.parametrize("seed", [1, 2])
def test_unknown_cap_learns_the_announced_cap(seed: int) -> None:
    outcome = _run(server_cap=CAP, configured=None, announce=True, operations=3000, seed=seed)
    assert outcome.accepted == 3000
    assert outcome.throttled_pct <= 2.0, f"seed={seed}: {outcome}"
    assert outcome.utilisation(CAP) >= 0.80, f"seed={seed}: {outcome}"


@pytest.mark.parametrize("seed", [1, 2])
def test_unknown_cap_estimated_when_not_announced(seed: int) -> None:
    """The announcement ignored: the cap is inferred from the first hinted 429."""
    outcome = _run(server_cap=CAP, configured=None, announce=False, operations=3000, seed=seed)
    assert outcome.accepted == 3000
    assert outcome.throttled > 0  # it did meet the wall, and recovered
    assert outcome.throttled_pct <= 2.0, f"seed={seed}: {outcome}"
    assert outcome.utilisation(CAP) >= 0.80, f"seed={seed}: {outcome}"


def test_aimd_and_hint_pauses_alone_complete_every_request() -> None:
    """Neither announcement nor estimate: the windows and the pauses still bring every
    request through (the 429 share is what the estimate is for)."""
    outcome = _run(server_cap=CAP, configured=None, announce=False, estimate=False, operations=3000)
    assert outcome.accepted == 3000
    assert outcome.throttled > 0
    assert outcome.window_min >= 1.0


@pytest.mark.parametrize("processes", [2, 3])
def test_shared_principal_split_by_rate_share(processes: int) -> None:
    outcome = _run(
        server_cap=CAP, configured=CAP, announce=True, operations=1800, processes=processes
    )
    assert outcome.throttled == 0
    assert outcome.accepted == 1800 - 1800 % processes


def test_a_low_estimate_is_probed_back_up() -> None:
    """A light phase (30 req/s) then a heavy one: the first 429 comes late, so the estimate
    (successes / time since the first one) is far too low; the 5% probes bring the rate back
    near the cap within the 90 s heavy phase, at a small cost in 429s."""

    async def main() -> tuple[float, int, int, str | None]:
        server = SlidingWindowLimiter(RateLimit(CAP.count, CAP.period))
        controller = PrincipalController(
            "alice", window_groups={}, adopt_announced_cap=False, seed=3
        )
        rng = random.Random(3)
        log: list[tuple[float, bool]] = []

        async def one() -> None:
            attempt = 0
            while True:
                attempt += 1
                async with controller.permit("blob_get") as permit:
                    await trio.sleep(0.001 + rng.random() * 0.004)
                    decision = server.check("alice", trio.current_time())
                    await trio.sleep(0.001 + rng.random() * 0.004)
                    log.append((trio.current_time(), decision.allowed))
                    if decision.allowed:
                        permit.succeeded()
                        return
                    signal = throttle_signal(429, {}, _body(decision.retry_after, None))
                    assert signal is not None
                    permit.throttled(signal)
                await controller.wait_after_throttle(signal, attempt)

        start = trio.current_time()
        with trio.move_on_after(15.0):
            while True:
                await one()
                await trio.sleep(0.03)

        async def heavy() -> None:
            while trio.current_time() - start < 105.0:
                await one()

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(heavy)
        end = trio.current_time()
        last = sum(1 for t, ok in log if ok and t > end - 20.0) / 20.0
        rejected = sum(1 for _, ok in log if not ok)
        return last, rejected, len(log), controller.statistics().cap_source

    rate, rejected, total, source = trio.run(
        main, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    assert source == "estimated"
    assert rate >= 0.8 * CAP.rate, rate
    assert rejected <= 0.02 * total, (rejected, total)
