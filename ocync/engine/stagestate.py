"""What the stages of a sync run share: the engine's bounds and the run's counters."""

from __future__ import annotations

from dataclasses import dataclass

from ocync.engine.sharding import Shard


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Concurrency bounds of the engine. Request rates are not set here: every request
    still waits for its principal's controller, which is what keeps a registry's cap."""

    max_concurrent_transfers: int = 8  # config global.max_concurrent_transfers's default
    # Tags examined at once: each costs 1-3 small requests; twice the transfers keeps the
    # channel full while images upload.
    discovery_concurrency: int = 16
    # Blobs of one image placed at once: images have 3-10 layers typically, and 8 images x 6
    # keeps the controller's window (<= 50 by default) busy without queueing far behind it.
    blob_concurrency: int = 6
    channel_size: int = 32  # work items discovered ahead of execution (bounded memory)
    drain_timeout: float = 25.0  # default drain deadline on SIGINT/SIGTERM: inside Kubernetes' 30 s grace period
    dry_run: bool = False
    handle_signals: bool = False
    force_prune: bool = False  # --force-prune: lifts prune.max_fraction (no other rail)
    # --shard I/N for the repositories pattern mappings expand to (literal mappings are
    # selected before the engine starts, with the same key).
    shard: Shard | None = None


@dataclass(slots=True)
class RunCounters:
    """How far a run is, written by discovery and execution, read by progress and the
    interrupt accounting."""

    expected: int = 0  # (item, target) pairs handed to execution
    finished: int = 0
    unexamined: int = 0  # selected tags whose discovery has not finished
    in_flight: int = 0
    seq: int = 0  # sequence number of the last tag admitted
    bytes: int = 0  # bytes_transferred of the results recorded so far
    stopping: bool = False


__all__ = ["EngineOptions", "RunCounters"]
