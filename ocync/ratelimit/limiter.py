"""The trio side of rate control: one ``PrincipalController`` per principal (host + credentials).

Every request waits for a permit: first the principal's gate (a pause after a throttle or an
exhausted budget, then the token bucket of a documented cap), then a slot in the AIMD window of
its kind's window key. Both queues are FIFO. A permit is released on every path; shrinking a
window never touches requests already in flight. The arithmetic lives in the pure machines of
``aimd.py`` and ``bucket.py``; this module waits, feeds outcomes back, and, when no cap is
configured, takes one from the first 429 (announced, as GHCR's "allowed: 2000/minute", or
estimated from the hint: ``bucket.estimate_cap``). A profile's documented cap is only a default:
a lower announced one replaces it (:func:`adopts_announced_cap`).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from ocync.errors import ConfigError
from ocync.ratelimit.aimd import (
    DEFAULT_EPOCH,
    DEFAULT_INITIAL_WINDOW,
    DEFAULT_MAX_CONCURRENT,
    AIMDWindow,
    WindowStatistics,
)
from ocync.ratelimit.bucket import (
    DEFAULT_HEADROOM,
    RateCap,
    TokenBucket,
    bucket_for_cap,
    estimate_cap,
)
from ocync.ratelimit.signals import ThrottleSignal

DEFAULT_KEY = "default"
# Backoff without a hint: 0.5 s doubling to 30 s, with "equal jitter" (half fixed, half random;
# AWS architecture blog "Exponential Backoff And Jitter"). regsync's 30 s maximum per wait.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
# Never trust a hint beyond this (a Retry-After of hours would look like a hang).
MAX_HINT = 300.0
# Added to a server's hint: its clock and ours tick apart, and GHCR's hint is to the millisecond.
HINT_MARGIN = 0.005
# An estimated cap is a guess: lowered by 10% when a request it paced is throttled, raised by 5%
# after each throttle-free period in which callers were waiting for it (a gentle rate AIMD, so a
# low first guess does not stick for the whole run).
ESTIMATE_DECREASE = 0.9
ESTIMATE_PROBE = 0.05
# ... at most this often: an estimate made late in a run spans the whole run as its "period".
ESTIMATE_PROBE_EVERY = 2.0


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (1-based) when the server gave no hint."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** max(0, attempt - 1))
    return ceiling / 2.0 + rng.random() * ceiling / 2.0


def hint_delay(signal: ThrottleSignal) -> float | None:
    """The server's hint, clamped and with a small margin; None when there is none."""
    if signal.retry_after is None or not math.isfinite(signal.retry_after):
        return None
    return min(MAX_HINT, max(0.0, signal.retry_after)) + HINT_MARGIN


def adopts_announced_cap(source: str | None, current: RateCap | None, announced: RateCap) -> bool:
    """Whether a cap announced in a 429 replaces the current one.

    Precedence: a configured cap (config ``rate_limit``, ``--rate-limit``) always holds; an
    announced cap lower than the profile's documented one wins over it (a registry that says
    "allowed: 100/10s" enforces that, whatever its documentation says); a documented cap holds
    against a higher announcement; announced and estimated caps follow the latest announcement.
    """
    if source == "configured":
        return False
    if source == "documented" and current is not None:
        return announced.rate < current.rate
    return current != announced


@dataclass(frozen=True, slots=True)
class KeyStatistics:
    """One window key of a controller."""

    window: WindowStatistics
    in_flight: int
    waiting: int
    requests: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.window.to_dict(),
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "requests": self.requests,
        }


@dataclass(frozen=True, slots=True)
class ControllerStatistics:
    """A snapshot of a ``PrincipalController``."""

    name: str
    windows: Mapping[str, KeyStatistics]
    requests: int
    unmetered: int
    throttles: int
    wait_seconds: float
    throttle_wait_seconds: float
    paused_seconds: float
    budget_pauses: int
    cap: str | None
    bucket_rate: float | None
    rate_share: float
    # Where the cap came from: "configured", "documented" (the registry profile's), "announced"
    # (the 429 said), "estimated", or None.
    cap_source: str | None = field(default=None)

    @property
    def learned_cap(self) -> bool:
        return self.cap_source in ("announced", "estimated")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "unmetered": self.unmetered,
            "throttles": self.throttles,
            "wait_seconds": round(self.wait_seconds, 3),
            "throttle_wait_seconds": round(self.throttle_wait_seconds, 3),
            "paused_seconds": round(self.paused_seconds, 3),
            "budget_pauses": self.budget_pauses,
            "cap": self.cap,
            "cap_source": self.cap_source,
            "learned_cap": self.learned_cap,
            "bucket_rate": None if self.bucket_rate is None else round(self.bucket_rate, 3),
            "rate_share": self.rate_share,
            "windows": {key: stats.to_dict() for key, stats in sorted(self.windows.items())},
        }


class _Window:
    """One AIMD window plus its in-flight count and FIFO of waiting tasks."""

    __slots__ = ("aimd", "in_flight", "key", "requests", "waiters")

    def __init__(self, key: str, aimd: AIMDWindow) -> None:
        self.key = key
        self.aimd = aimd
        self.in_flight = 0
        self.requests = 0
        self.waiters: deque[trio.Event] = deque()


class Permit:
    """The right to send one request. Report its outcome with ``succeeded()`` or ``throttled()``;
    reporting neither (a transport error, a 404) leaves the window as it was."""

    __slots__ = ("_controller", "_window", "admitted_at", "key", "kind", "outcome")

    def __init__(
        self, controller: PrincipalController, kind: str, window: _Window | None, now: float
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
        cap_source: str = "configured",
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
        # Use the cap a registry announces with its 429 (GHCR: "allowed: 2000/minute") when
        # none is configured; False ignores announcements.
        self.adopt_announced_cap = adopt_announced_cap
        # Without any cap, infer one from the first throttle that carries a hint (see
        # bucket.estimate_cap); False leaves the AIMD window and the hint pauses on their own.
        self.estimate_cap = estimate_cap
        self._first_success_at: float | None = None
        self._successes = 0
        self._windows: dict[str, _Window] = {}
        self._cap: RateCap | None = None
        self._cap_source: str | None = None
        self._cap_set_at = -math.inf
        self._cap_epoch_end = -math.inf
        self._probe_after = math.inf
        self._bucket: TokenBucket | None = None
        self._gate: deque[trio.Event] = deque()
        self._paused_until = -math.inf
        self._paused_seconds = 0.0
        self._throttles = 0
        self._consecutive_throttles = 0
        self._budget_pauses = 0
        self._requests = 0
        self._unmetered = 0
        self._wait_seconds = 0.0
        self._throttle_wait_seconds = 0.0
        if cap is not None:
            self.set_cap(cap, source=cap_source)

    # -- configuration -------------------------------------------------------------------

    @property
    def cap(self) -> RateCap | None:
        return self._cap

    @property
    def cap_source(self) -> str | None:
        return self._cap_source

    @property
    def rate_share(self) -> float:
        return self._rate_share

    def set_cap(self, cap: RateCap | None, *, source: str = "configured") -> None:
        """Apply a cap from now on; None removes the bucket.

        ``source`` is "configured" (config or ``--rate-limit``; scaled by ``rate_share``),
        "documented" (the registry profile's; scaled, and a lower announced cap replaces it),
        "announced" (the registry's 429 said so; scaled too) or "estimated" (inferred from our
        own successes, which are already our share).
        """
        self._cap = cap
        self._cap_source = None if cap is None else source
        now = _now_or_none()
        self._cap_set_at = -math.inf if now is None else now
        if cap is None:
            self._bucket = None
            return
        share = 1.0 if source == "estimated" else self._rate_share
        bucket = bucket_for_cap(cap, rate_share=share, headroom=self._headroom, now=now)
        if self._bucket is not None and now is not None:
            bucket = TokenBucket(
                bucket.rate,
                bucket.capacity,
                tokens=min(bucket.capacity, self._bucket.available(now)),
                now=now,
            )
        self._bucket = bucket

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
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._wait_for_gate()
        await self._wait_for_slot(window)
        now = _now()
        self._wait_seconds += now - start
        self._requests += 1
        window.requests += 1
        try:
            yield Permit(self, kind, window, now)
        finally:
            window.in_flight -= 1
            self._wake(window)

    async def _wait_for_gate(self) -> None:
        """FIFO through the pause and the token bucket; takes one token."""
        now = _now()
        if not self._gate and self._gate_delay(now) <= 0:
            # No yield between the gate and the window queue keeps admission FIFO end to end.
            self._take_token(now)
            return
        waiter = trio.Event()
        self._gate.append(waiter)
        try:
            if self._gate[0] is not waiter:
                await waiter.wait()
            while True:
                now = _now()
                delay = self._gate_delay(now)
                if delay <= 0:
                    self._take_token(now)
                    return
                await trio.sleep(delay)
        finally:
            head = bool(self._gate) and self._gate[0] is waiter
            self._gate.remove(waiter)
            if head and self._gate:
                self._gate[0].set()

    def _gate_delay(self, now: float) -> float:
        delay = self._paused_until - now
        if self._bucket is not None:
            delay = max(delay, self._bucket.delay(now))
        return delay

    def _take_token(self, now: float) -> None:
        if self._bucket is not None:
            self._bucket.try_take(now)

    async def _wait_for_slot(self, window: _Window) -> None:
        """FIFO for a slot of ``window``; a releasing task hands its slot to the head waiter."""
        if not window.waiters and window.in_flight < window.aimd.limit:
            window.in_flight += 1
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        waiter = trio.Event()
        window.waiters.append(waiter)
        try:
            await waiter.wait()
        except BaseException:
            # Shield-and-reraise: give back a slot handed to us, or leave the queue.
            if waiter.is_set():
                window.in_flight -= 1
                self._wake(window)
            else:
                window.waiters.remove(waiter)
            raise

    def _wake(self, window: _Window) -> None:
        while window.waiters and window.in_flight < window.aimd.limit:
            window.in_flight += 1
            window.waiters.popleft().set()

    # -- feedback ------------------------------------------------------------------------

    def _on_success(self, window: _Window | None, admitted_at: float) -> None:
        self._consecutive_throttles = 0
        if window is not None and self._cap is None:
            if self._first_success_at is None or admitted_at < self._first_success_at:
                self._first_success_at = admitted_at
            self._successes += 1
        if window is not None:
            now = _now()
            limited = window.in_flight >= window.aimd.limit or bool(window.waiters)
            window.aimd.on_success(now, limited=limited)
            self._wake(window)
            if (
                self._cap_source == "estimated"
                and self._gate
                and now >= self._probe_after
                and now >= self._paused_until
            ):
                self._probe_estimate(now)

    def _on_throttle(
        self, window: _Window | None, signal: ThrottleSignal, admitted_at: float
    ) -> None:
        now = _now()
        self._throttles += 1
        new_epoch = True
        if window is not None:
            new_epoch = not window.aimd.in_epoch(now)
            window.aimd.on_throttle(now)
        if new_epoch:
            self._consecutive_throttles += 1
        self._learn_cap(signal, now, admitted_at)
        # Pause new admissions until the hint expires, so that the other tasks do not pile
        # into the same wall; without a hint, back off by the number of throttled epochs.
        delay = hint_delay(signal)
        if delay is None:
            delay = backoff_delay(self._consecutive_throttles, self._rng)
        self._pause_until(now + delay)
        if self._bucket is not None:
            self._bucket.drain(now)

    def _learn_cap(self, signal: ThrottleSignal, now: float, admitted_at: float) -> None:
        """Adopt an announced cap, estimate one, or lower an estimate the registry disproved."""
        announced = signal.allowed if self.adopt_announced_cap else None
        if announced is not None:
            if adopts_announced_cap(self._cap_source, self._cap, announced):
                self.set_cap(announced, source="announced")
            return
        if self._cap is None:
            if (
                self.estimate_cap
                and signal.retry_after is not None
                and self._first_success_at is not None
            ):
                estimate = estimate_cap(
                    self._successes, self._first_success_at, now, signal.retry_after
                )
                if estimate is not None:
                    self.set_cap(estimate, source="estimated")
                    self._cap_epoch_end = now + self._epoch
                    self._probe_after = (
                        now + signal.retry_after + min(estimate.period, ESTIMATE_PROBE_EVERY)
                    )
            return
        if (
            self._cap_source == "estimated"
            and admitted_at >= self._cap_set_at
            and now >= self._cap_epoch_end
        ):
            # A request paced by the estimate was throttled: the estimate was too high.
            # Multiplicative decrease, once per epoch (the same rule as the window's).
            cap = self._cap
            lower = max(1, math.floor(cap.count * ESTIMATE_DECREASE))
            self.set_cap(RateCap(lower, cap.period), source="estimated")
            self._cap_epoch_end = now + self._epoch
            self._probe_after = now + 2 * min(cap.period, ESTIMATE_PROBE_EVERY)

    def _probe_estimate(self, now: float) -> None:
        """Callers wait on an estimated cap that held for a whole period: try 5% more."""
        cap = self._cap
        assert cap is not None
        higher = cap.count + max(1, math.ceil(cap.count * ESTIMATE_PROBE))
        self.set_cap(RateCap(higher, cap.period), source="estimated")
        self._probe_after = now + min(cap.period, ESTIMATE_PROBE_EVERY)

    def observe_budget(self, remaining: int, reset_seconds: float | None) -> None:
        """A budget header: pause new admissions before the budget runs out.

        The requests in flight will spend budget too, so the gate closes when ``remaining``
        no longer covers them; it opens again when the budget resets (or after a backoff).
        """
        in_flight = sum(w.in_flight for w in self._windows.values())
        if remaining > max(1, in_flight):
            return
        now = _now()
        if reset_seconds is not None and math.isfinite(reset_seconds):
            delay = min(MAX_HINT, max(0.0, reset_seconds)) + HINT_MARGIN
        else:
            delay = backoff_delay(1, self._rng)
        if self._pause_until(now + delay):
            self._budget_pauses += 1
        if self._bucket is not None:
            self._bucket.drain(now)

    def _pause_until(self, until: float) -> bool:
        now = _now()
        if until <= self._paused_until:
            return False
        start = max(now, self._paused_until)
        self._paused_seconds += max(0.0, until - start)
        self._paused_until = until
        return True

    def paused_for(self) -> float:
        """Seconds until the gate reopens (0.0 when open)."""
        return max(0.0, self._paused_until - _now())

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

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            aimd = AIMDWindow(
                initial=self._initial_window, cap=self._max_concurrent, epoch=self._epoch
            )
            window = self._windows[key] = _Window(key, aimd)
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
        return ControllerStatistics(
            name=self.name,
            windows=windows,
            requests=self._requests + self._unmetered,
            unmetered=self._unmetered,
            throttles=self._throttles,
            wait_seconds=self._wait_seconds,
            throttle_wait_seconds=self._throttle_wait_seconds,
            paused_seconds=self._paused_seconds,
            budget_pauses=self._budget_pauses,
            cap=None if self._cap is None else str(self._cap),
            bucket_rate=None if self._bucket is None else self._bucket.rate,
            rate_share=self._rate_share,
            cap_source=self._cap_source,
        )

    def __repr__(self) -> str:
        windows = ", ".join(
            f"{k}={w.aimd.window:.1f}/{w.in_flight}" for k, w in sorted(self._windows.items())
        )
        return (
            f"<PrincipalController {self.name!r} cap={self._cap} share={self._rate_share} "
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
        cap_source: str = "configured",
    ) -> PrincipalController:
        """The controller of ``principal``, created on first use.

        Later callers share it; a cap given later applies if there was none, if it is
        stricter than the current one, or if it is configured and the current one is not.
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
        elif cap is not None and (
            controller.cap is None
            or cap.rate < controller.cap.rate
            or (cap_source == "configured" and controller.cap_source != "configured")
        ):
            controller.set_cap(cap, source=cap_source)
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


def _now_or_none() -> float | None:
    """The trio clock, or None outside ``trio.run`` (a bucket then starts on first use)."""
    try:
        return trio.current_time()
    except RuntimeError:
        return None


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "DEFAULT_KEY",
    "ControllerRegistry",
    "ControllerStatistics",
    "KeyStatistics",
    "Permit",
    "PrincipalController",
    "adopts_announced_cap",
    "backoff_delay",
    "hint_delay",
]
