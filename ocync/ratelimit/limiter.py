"""The trio side of rate control: one ``PrincipalController`` per principal (host + credentials).

Every request waits for a permit: first the principal's gate (a pause after a throttle or an
exhausted budget, then the token bucket of a cap), then a slot in the AIMD window of its kind's
window key. Both queues are FIFO (``admission.py``). A permit is released on every path;
shrinking a window never touches requests already in flight. Every decision is made by a pure
machine: ``aimd.py`` (the windows), ``gate.py`` (pauses and bucket), ``caplearner.py`` (which
cap: configured, documented, announced or estimated; which of two callers' caps a shared
principal keeps) and ``backoff.py``; this module reads trio's clock once per event, passes it
to them, and waits.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import trio

from ocync.errors import ConfigError
from ocync.ratelimit.admission import GateQueue, WindowSlots
from ocync.ratelimit.aimd import (
    DEFAULT_EPOCH,
    DEFAULT_INITIAL_WINDOW,
    DEFAULT_MAX_CONCURRENT,
    AIMDWindow,
)
from ocync.ratelimit.backoff import backoff_delay, hint_delay
from ocync.ratelimit.bucket import DEFAULT_HEADROOM, RateCap
from ocync.ratelimit.caplearner import CapLearner, CapSource, replaces_shared_cap
from ocync.ratelimit.gate import GateState
from ocync.ratelimit.signals import ThrottleSignal
from ocync.ratelimit.statistics import ControllerStatistics, KeyStatistics

DEFAULT_KEY = "default"


class Permit:
    """The right to send one request. Report its outcome with ``succeeded()`` or ``throttled()``;
    reporting neither (a transport error, a 404) leaves the window as it was."""

    __slots__ = ("_controller", "_window", "admitted_at", "key", "kind", "outcome")

    def __init__(
        self, controller: PrincipalController, kind: str, window: WindowSlots | None, now: float
    ) -> None:
        self._controller = controller
        self._window = window
        self.kind = kind
        self.key = None if window is None else window.key
        self.admitted_at = now
        self.outcome: str | None = None

    def succeeded(self) -> None:
        if self.outcome is None:
            self.outcome = "success"
            self._controller._on_success(self._window, self.admitted_at)

    def throttled(self, signal: ThrottleSignal) -> None:
        if self.outcome is None:
            self.outcome = "throttled"
            self._controller._on_throttle(self._window, signal, self.admitted_at)

    def __repr__(self) -> str:
        return f"<Permit kind={self.kind} key={self.key} outcome={self.outcome}>"


class PrincipalController:
    """Admission control for one principal: a gate (pause + token bucket) and AIMD windows.

    ``window_groups`` maps a request kind to its window key; a kind mapped to None is unmetered
    (no window, no bucket, no pause); kinds not in the mapping use ``"default"``.
    ``adopt_announced_cap`` uses the cap a registry announces with its 429 when none is
    configured; ``estimate_cap`` infers one from the first hinted throttle without any
    (``bucket.estimate_cap``). The bucket of a ``cap`` given here starts its clock at the first
    admission, so a controller may be built before ``trio.run``.
    """

    def __init__(
        self,
        name: str,
        *,
        window_groups: Mapping[str, str | None],
        cap: RateCap | None = None,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        initial_window: float = DEFAULT_INITIAL_WINDOW,
        rate_share: float = 1.0,
        epoch: float = DEFAULT_EPOCH,
        headroom: float = DEFAULT_HEADROOM,
        seed: int | None = None,
        adopt_announced_cap: bool = True,
        estimate_cap: bool = True,
        cap_source: CapSource = "configured",
    ) -> None:
        if not 0 < rate_share <= 1:
            raise ConfigError(f"--rate-share must be in (0, 1], got {rate_share}")
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1, got {max_concurrent}")
        self.name = name
        self._groups = dict(window_groups)
        self._max_concurrent = max_concurrent
        self._initial_window = initial_window
        self._rate_share = rate_share
        self._epoch = epoch
        self._headroom = headroom
        self._rng = random.Random(seed)
        self._learner = CapLearner(
            adopt_announced=adopt_announced_cap, estimate=estimate_cap, epoch=epoch
        )
        self._gate = GateState()
        self._gate_queue = GateQueue(self._gate)
        self._windows: dict[str, WindowSlots] = {}
        self._requests = 0
        self._unmetered = 0
        self._throttles = 0
        self._wait_seconds = 0.0
        self._throttle_wait_seconds = 0.0
        if cap is not None:
            self.set_cap(cap, source=cap_source, now=None)

    # -- configuration -------------------------------------------------------------------

    @property
    def cap(self) -> RateCap | None:
        return self._learner.cap

    @property
    def cap_source(self) -> CapSource | None:
        return self._learner.source

    @property
    def rate_share(self) -> float:
        return self._rate_share

    @property
    def adopt_announced_cap(self) -> bool:
        return self._learner.adopt_announced

    @property
    def estimate_cap(self) -> bool:
        return self._learner.estimate

    def set_cap(
        self, cap: RateCap | None, *, source: CapSource = "configured", now: float | None
    ) -> None:
        """Apply a cap from ``now`` on; None removes the bucket.

        ``source`` is "configured" (config or ``--rate-limit``; scaled by ``rate_share``),
        "documented" (the registry profile's; scaled, and a lower announced cap replaces it),
        "announced" (the registry's 429 said so; scaled too) or "estimated" (inferred from our
        own successes, which are already our share). ``now`` is trio's clock inside the run
        (the new bucket keeps the old one's tokens), None before it (the bucket's clock then
        starts at its first use).
        """
        self._learner.set(cap, source, now)
        self._apply_cap(now)

    def _apply_cap(self, now: float | None) -> None:
        bucket = self._learner.bucket(rate_share=self._rate_share, headroom=self._headroom, now=now)
        self._gate.set_bucket(bucket, now)

    def key_for(self, kind: str) -> str | None:
        return self._groups.get(kind, DEFAULT_KEY)

    # -- admission -----------------------------------------------------------------------

    def permit(self, kind: str) -> AbstractAsyncContextManager[Permit]:
        """Wait for the gate, then a window slot (both FIFO); release the slot on exit."""
        return self._permit(kind)

    @asynccontextmanager
    async def _permit(self, kind: str) -> AsyncIterator[Permit]:
        key = self.key_for(kind)
        if key is None:
            await trio.lowlevel.checkpoint()
            self._unmetered += 1
            yield Permit(self, kind, None, _now())
            return
        window = self._window(key)
        start = _now()
        await trio.lowlevel.checkpoint_if_cancelled()  # no schedule point: still ``start``
        await self._gate_queue.wait_for_gate(start)
        await window.wait_for_slot()
        now = _now()
        self._wait_seconds += now - start
        self._requests += 1
        window.requests += 1
        try:
            yield Permit(self, kind, window, now)
        finally:
            window.release()

    # -- feedback: read the clock once, let the machines decide, apply -----------------------

    def _on_success(self, window: WindowSlots | None, admitted_at: float) -> None:
        self._gate.on_success()
        if window is None:
            return
        now = _now()
        window.aimd.on_success(now, limited=window.limited)
        window.wake()
        waiting = self._gate_queue.waiting and now >= self._gate.paused_until
        if self._learner.on_success(now, admitted_at, waiting=waiting) is not None:
            self._apply_cap(now)

    def _on_throttle(
        self, window: WindowSlots | None, signal: ThrottleSignal, admitted_at: float
    ) -> None:
        now = _now()
        self._throttles += 1
        new_epoch = True
        if window is not None:
            new_epoch = not window.aimd.in_epoch(now)
            window.aimd.on_throttle(now)
        if self._learner.on_throttle(now, signal, admitted_at) is not None:
            self._apply_cap(now)
        self._gate.on_throttle(now, signal, self._rng, new_epoch=new_epoch)

    def observe_budget(self, remaining: int, reset_seconds: float | None) -> None:
        """A budget header: pause new admissions before the budget runs out (``GateState``)."""
        in_flight = sum(w.in_flight for w in self._windows.values())
        self._gate.on_budget(_now(), remaining, reset_seconds, in_flight, self._rng)

    def paused_for(self) -> float:
        """Seconds until the gate reopens (0.0 when open)."""
        return self._gate.paused_for(_now())

    async def wait_after_throttle(self, signal: ThrottleSignal, attempt: int) -> None:
        """Before retrying a throttled request: the server's hint, or backoff with jitter."""
        delay = hint_delay(signal)
        if delay is None:
            delay = backoff_delay(attempt, self._rng)
        start = _now()
        try:
            await trio.sleep(delay)
        finally:
            self._throttle_wait_seconds += _now() - start

    # -- introspection -------------------------------------------------------------------

    def _window(self, key: str) -> WindowSlots:
        window = self._windows.get(key)
        if window is None:
            aimd = AIMDWindow(
                initial=self._initial_window, cap=self._max_concurrent, epoch=self._epoch
            )
            window = self._windows[key] = WindowSlots(key, aimd)
        return window

    def window_limit(self, key: str = DEFAULT_KEY) -> int:
        return self._window(key).aimd.limit

    def statistics(self) -> ControllerStatistics:
        windows = {
            key: KeyStatistics(
                window=w.aimd.statistics(),
                in_flight=w.in_flight,
                waiting=len(w.waiters),
                requests=w.requests,
            )
            for key, w in self._windows.items()
        }
        gate = self._gate.statistics()
        learned = self._learner.statistics()
        return ControllerStatistics(
            name=self.name,
            windows=windows,
            requests=self._requests + self._unmetered,
            unmetered=self._unmetered,
            throttles=self._throttles,
            wait_seconds=self._wait_seconds,
            throttle_wait_seconds=self._throttle_wait_seconds,
            paused_seconds=gate.paused_seconds,
            budget_pauses=gate.budget_pauses,
            cap=learned.cap,
            bucket_rate=gate.bucket_rate,
            rate_share=self._rate_share,
            cap_source=learned.cap_source,
        )

    def __repr__(self) -> str:
        windows = ", ".join(
            f"{k}={w.aimd.window:.1f}/{w.in_flight}" for k, w in sorted(self._windows.items())
        )
        return (
            f"<PrincipalController {self.name!r} cap={self.cap} share={self._rate_share} "
            f"windows[{windows}] throttles={self._throttles}>"
        )


class ControllerRegistry:
    """One controller per principal, shared by every client, mapping and direction using it."""

    def __init__(self, *, rate_share: float = 1.0, epoch: float = DEFAULT_EPOCH) -> None:
        if not 0 < rate_share <= 1:
            raise ConfigError(f"--rate-share must be in (0, 1], got {rate_share}")
        self.rate_share = rate_share
        self._epoch = epoch
        self._controllers: dict[str, PrincipalController] = {}

    def controller_for(
        self,
        principal: str,
        *,
        window_groups: Mapping[str, str | None],
        cap: RateCap | None = None,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        rate_share: float | None = None,
        cap_source: CapSource = "configured",
        now: float | None = None,
    ) -> PrincipalController:
        """The controller of ``principal``, created on first use.

        Later callers share it; a cap given later applies if there was none, if it is
        stricter than the current one, or if it is configured and the current one is not.
        ``now`` is trio's clock when called inside the run (see ``set_cap``), None before it.
        """
        controller = self._controllers.get(principal)
        if controller is None:
            controller = PrincipalController(
                principal,
                window_groups=window_groups,
                cap=cap,
                max_concurrent=max_concurrent,
                rate_share=self.rate_share if rate_share is None else rate_share,
                epoch=self._epoch,
                cap_source=cap_source,
            )
            self._controllers[principal] = controller
        elif cap is not None and replaces_shared_cap(controller.cap, controller.cap_source, cap, cap_source):
            controller.set_cap(cap, source=cap_source, now=now)
        return controller

    def __iter__(self) -> Iterator[PrincipalController]:
        return iter(self._controllers.values())

    def __len__(self) -> int:
        return len(self._controllers)

    def __bool__(self) -> bool:
        # An empty registry is still a registry (``registry or ControllerRegistry()`` must
        # not replace a shared one before its first controller exists).
        return True

    def statistics(self) -> list[ControllerStatistics]:
        return [c.statistics() for c in self._controllers.values()]

    def __repr__(self) -> str:
        return f"<ControllerRegistry principals={sorted(self._controllers)}>"


def _now() -> float:
    return trio.current_time()


__all__ = [
    "DEFAULT_KEY",
    "ControllerRegistry",
    "ControllerStatistics",
    "KeyStatistics",
    "Permit",
    "PrincipalController",
]
