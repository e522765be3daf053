"""The sync engine: discovery -> plan -> transfer, on trio nurseries.

``run_sync(config, RunOptions())`` runs a whole config (clients, controllers, cache, staging);
``SyncEngine`` is the pipeline over any :mod:`ocync.engine.endpoints` implementation; the
pure decisions live in :mod:`ocync.engine.plan`, the persisted state in
:mod:`ocync.engine.cache`, the results in :mod:`ocync.engine.report`.
"""

from ocync.engine.cache import TransferCache
from ocync.engine.cachefile import CacheFile
from ocync.engine.discovery import ArtifactPolicy, MappingSpec, TargetRepo
from ocync.engine.pipeline import EngineOptions, SyncEngine
from ocync.engine.report import ImageResult, ImageStatus, RunReport
from ocync.engine.syncrun import RunOptions, run_sync

__all__ = [
    "ArtifactPolicy",
    "CacheFile",
    "EngineOptions",
    "ImageResult",
    "ImageStatus",
    "MappingSpec",
    "RunOptions",
    "RunReport",
    "SyncEngine",
    "TargetRepo",
    "TransferCache",
    "run_sync",
]
