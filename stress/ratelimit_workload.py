"""The rate-limit scenarios' client workload and how a run is measured: tasks sharing one
principal through ocync's RegistryClient against a capped mock (scenarios 1-2), the mock's own
per-second timeline turned into rates (`measure`), and what every scenario returns.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from mockregistry import MockOptions, serve_mock
from ocync.errors import OcyncError
from ocync.oci import mediatypes as mt
from ocync.oci.digest import Digest
from ocync.oci.manifest import Descriptor
from ocync.ratelimit.bucket import parse_rate
from ocync.ratelimit.limiter import ControllerRegistry, PrincipalController
from ocync.registry.auth import AuthSettings
from ocync.registry.blobs import copy_blob_to, upload_blob
from ocync.registry.client import ClientSettings, RegistryClient
from ocync.registry.profiles import profile_named
from stress.corpus import Corpus, CorpusSpec, build_corpus

USER, PASSWORD = "alice", "pat-alice"  # the one principal of every scenario


# -- the workload --------------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    """Controller snapshots over time (for the plot): t, window per key, throttles."""

    t: list[float] = field(default_factory=list)
    windows: dict[str, list[float]] = field(default_factory=dict)
    throttles: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)


@dataclass(slots=True)
class WorkloadResult:
    operations: int  # registry API requests of the workload (client counters, seeding excluded)
    units: int
    errors: list[str]
    seconds: float
    client: dict[str, Any]
    controller: dict[str, Any]
    samples: Samples


# Each task's image (from the corpus planner: a config and one small layer), read by the workers.
BASE_TAG = "base"


def _base_images(tasks: int, seed: int) -> Corpus:
    """One single-platform image per task; the workload is about requests, not bytes."""
    spec = CorpusSpec(
        seed=seed,
        repositories=tasks,
        namespace="",
        tags_per_repo=1,
        platforms=("linux/amd64",),
        layers_per_image=1,
        layer_size=(512, 512),
        shared_base_layers=0,
    )
    return build_corpus(spec)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _push_blob(
    client: RegistryClient, repo: str, data: bytes, media_type: str = mt.OCI_LAYER
) -> Descriptor:
    """Upload with a fresh session per attempt: a throttled *streamed* PUT cannot be replayed
    by the client, so the transfer restarts (as the engine's blob copies do)."""
    desc = Descriptor(media_type, Digest.of(data), len(data))
    for attempt in range(1, 6):
        try:
            await upload_blob(client, repo, desc, _chunks(data))
            return desc
        except OcyncError as exc:
            if not exc.temporary or attempt == 5:
                raise
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Workload:
    """What the workers and the sampler share: the two clients, the goal, and the tallies."""

    source: RegistryClient
    target: RegistryClient
    operations: int
    errors: list[str] = field(default_factory=list)
    samples: Samples = field(default_factory=Samples)
    units: int = 0
    base: int = 0  # requests made before the workload started (seeding)
    start: float = 0.0

    def made(self) -> int:
        """Registry API requests so far (the storage host's blob GETs are not API calls)."""
        total = 0
        for client in (self.source, self.target):
            stats = client.statistics()
            total += stats.requests - stats.by_kind.get("storage_get", 0)
        return total

    def done(self) -> int:
        """Requests of the workload itself (seeding excluded)."""
        return self.made() - self.base


def _controller(
    url: str, profile: str, rate_limit: str | None, rate_share: float, learning: str, seed: int
) -> PrincipalController | None:
    """The principal's controller for ``learning`` other than "announced" (None: the default)."""
    if learning == "announced":
        return None
    return PrincipalController(
        f"{url}|{USER}",
        window_groups=profile_named(profile).window_groups,
        cap=parse_rate(rate_limit) if rate_limit else None,
        rate_share=rate_share,
        adopt_announced_cap=False,
        estimate_cap=learning == "estimated",
        seed=seed,
    )


async def _seed_images(client: RegistryClient, images: Corpus, prefix: str) -> list[str]:
    """Push each planned image to its task's source repository, tagged BASE_TAG."""
    repos: list[str] = []
    for t, image in enumerate(images.images):
        repo = f"{USER}/{prefix}-src-{t}"
        for digest in image.blobs:
            blob = images.blobs[digest]
            await _push_blob(client, repo, blob.data, blob.media_type)
        top = images.manifests[image.digest]
        await client.put_manifest(repo, BASE_TAG, top.data, top.media_type)
        repos.append(repo)
    return repos


async def _worker(work: _Workload, src: str, dst: str, rng: random.Random) -> None:
    """Repeat one unit until the workload has made its requests: upload a small blob, copy it
    to a second repository, read the image's manifest twice, HEAD the copy."""
    source, target = work.source, work.target
    while work.done() < work.operations:
        try:
            desc = await _push_blob(source, src, rng.randbytes(rng.randint(256, 4096)))
            await copy_blob_to(source, src, desc, target, dst)
            await source.get_manifest(src, BASE_TAG)
            await target.head_blob(dst, desc.digest)
            await source.get_manifest(src, BASE_TAG)
            work.units += 1
        except Exception as exc:  # reported, the scenario then fails
            work.errors.append(f"{type(exc).__name__}: {exc}")
            if len(work.errors) > 20:
                raise


async def _sampler(
    work: _Workload, controller: PrincipalController, every: float, cancel: trio.CancelScope
) -> None:
    """Snapshot the controller every ``every`` seconds (for the plot) until ``cancel``."""
    samples = work.samples
    with cancel:
        while True:
            stats = controller.statistics()
            samples.t.append(trio.current_time() - work.start)
            samples.throttles.append(stats.throttles)
            samples.requests.append(work.done())
            for key, key_stats in stats.windows.items():
                series = samples.windows.setdefault(key, [math.nan] * (len(samples.t) - 1))
                series.append(key_stats.window.window)
            for series in samples.windows.values():
                if len(series) < len(samples.t):
                    series.append(series[-1] if series else math.nan)
            await trio.sleep(every)


async def run_workload(
    url: str,
    *,
    profile: str,
    operations: int,
    tasks: int,
    rate_limit: str | None,
    rate_share: float = 1.0,
    prefix: str = "rl",
    seed: int = 1,
    learning: str = "announced",
    sample_every: float = 0.1,
    on_start: Callable[[], None] | None = None,
) -> WorkloadResult:
    """``tasks`` tasks sharing one principal (a source and a target client, one controller)
    repeat a unit (`_worker`) until the client has made ``operations`` requests."""
    settings = ClientSettings(
        auth=AuthSettings(kind="basic", username=USER, password=PASSWORD),
        profile=profile,
        rate_limit=rate_limit,
        rate_share=rate_share,
        insecure=True,
    )
    registry = ControllerRegistry(rate_share=rate_share)
    controller = _controller(url, profile, rate_limit, rate_share, learning, seed)
    async with (
        RegistryClient(
            url, settings, controllers=registry, controller=controller, seed=seed
        ) as source,
        RegistryClient(
            url, settings, controllers=registry, controller=controller, seed=seed + 1
        ) as target,
    ):
        assert source.controller is target.controller, "one principal, one controller"
        work = _Workload(source, target, operations)
        # One image per task (its requests count as operations too).
        bases = await _seed_images(source, _base_images(tasks, seed), prefix)
        if on_start is not None:
            on_start()
        work.base = work.made()
        work.start = trio.current_time()
        cancel = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sampler, work, source.controller, sample_every, cancel)
            async with trio.open_nursery() as workers:
                for t in range(tasks):
                    dst = f"{USER}/{prefix}-dst-{t}"
                    workers.start_soon(_worker, work, bases[t], dst, random.Random(seed * 1000 + t))
            cancel.cancel()
        seconds = trio.current_time() - work.start
        return WorkloadResult(
            operations=work.done(),
            units=work.units,
            errors=work.errors,
            seconds=seconds,
            client={
                "source": source.statistics().to_dict(),
                "target": target.statistics().to_dict(),
            },
            controller=source.controller.statistics().to_dict(),
            samples=work.samples,
        )


# -- measuring -------------------------------------------------------------------------------------


def measure(stats: dict[str, Any], count: int, period: float, seconds: float) -> dict[str, Any]:
    """Rates from the mock's per-second timeline while work was pending.

    The timeline starts when the stats were reset (the workload's start); the last, partial
    second is left out. The timeline also counts the storage host's GETs (blob redirects, not
    rate limited), so they are taken out in proportion. ``utilisation`` counts accepted API
    requests (a 429 uses no capacity) against the cap.
    """
    timeline = stats.get("timeline", [])
    full = [row for row in timeline if row["t"] < math.floor(seconds)]
    cap_rate = count / period
    total = stats["requests_total"]
    storage = stats.get("by_kind", {}).get("storage_get", 0)
    api_share = (total - storage) / total if total else 1.0
    requests = sum(row["requests"] for row in full) * api_share
    throttled = sum(row["throttled"] for row in full)
    n = max(1, len(full))
    return {
        "requests": total - storage,
        "storage_requests": storage,
        "throttled": stats["throttled"],
        "throttled_pct": round(100.0 * stats["throttled"] / max(1, total - storage), 3),
        "seconds_measured": len(full),
        "request_rate": round(requests / n, 2),
        "accepted_rate": round((requests - throttled) / n, 2),
        "cap_rate": round(cap_rate, 2),
        "utilisation": round((requests - throttled) / n / cap_rate, 4),
        "timeline": timeline,
    }


@dataclass(slots=True)
class ScenarioResult:
    name: str
    title: str
    passed: bool
    checks: dict[str, bool]
    numbers: dict[str, Any]
    samples: Samples | None = None

    def summary(self) -> dict[str, Any]:
        numbers = dict(self.numbers)
        numbers["timeline"] = [
            [row["t"], row["requests"], row["throttled"]] for row in numbers.get("timeline", [])
        ]
        return {
            "name": self.name,
            "title": self.title,
            "passed": self.passed,
            "checks": self.checks,
            **numbers,
        }


def mock_options(profile: str, cap: str, seed: int) -> MockOptions:
    return MockOptions(
        profile=profile, auth="token", users={USER: PASSWORD}, rate_limit=cap, seed=seed
    )


async def measured_workload(
    profile: str, cap: str, seed: int, **workload: Any
) -> tuple[dict[str, Any], WorkloadResult]:
    """`run_workload(**workload)` against a fresh token-auth mock enforcing ``cap``: the mock's
    measures (counted from the workload's start) with the workload's numbers, and its result."""
    rate = parse_rate(cap)
    async with serve_mock(mock_options(profile, cap, seed)) as mock:
        result = await run_workload(
            mock.url, profile=profile, seed=seed, on_start=mock.reset_stats, **workload
        )
        numbers = measure(mock.stats(), rate.count, rate.period, result.seconds)
    numbers.update(_workload_numbers(result))
    return numbers, result


def _workload_numbers(result: WorkloadResult) -> dict[str, Any]:
    windows = result.controller["windows"]
    return {
        "client_requests": result.operations,
        "units": result.units,
        "errors": result.errors[:5],
        "seconds": round(result.seconds, 2),
        "controller_throttles": result.controller["throttles"],
        "learned_cap": result.controller["cap"] if result.controller["learned_cap"] else None,
        "cap_source": result.controller["cap_source"],
        "window_mean": {k: v["mean"] for k, v in windows.items()},
        "window_min": {k: v["min"] for k, v in windows.items()},
        "window_max": {k: v["max"] for k, v in windows.items()},
        "wait_seconds": result.controller["wait_seconds"],
    }
