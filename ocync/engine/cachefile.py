"""The persisted transfer cache: ``<cache_dir>/transfer-cache.json`` and its lock.

The file is written atomically (tmp + os.replace) and carries a SHA-256 checksum of its
payload and a save time (``cache_ttl``); a corrupt, foreign or expired file is discarded
with a warning, keeping only its record of which target tags ocync owns. An advisory
``fcntl`` lock guards it against a concurrent run (the second run does not persist).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import IO

from ocync.engine.cache import TransferCache

log = logging.getLogger("ocync.engine.cache")  # the logger name the cache has always had

FORMAT = "ocync-transfer-cache"
VERSION = 1


def _checksum(payload_text: str) -> str:
    return "sha256:" + hashlib.sha256(payload_text.encode()).hexdigest()


class CacheFile:
    """The persisted cache: ``<cache_dir>/transfer-cache.json`` plus ``.lock``.

    ``now`` is a parameter (wall-clock seconds) so tests need no clock."""

    def __init__(self, cache_dir: Path, *, ttl: float | None, stem: str = "transfer-cache") -> None:
        self.path = Path(cache_dir) / f"{stem}.json"  # a shard's stem: Shard.cache_stem
        self.lock_path = Path(cache_dir) / f"{stem}.lock"
        self.ttl = ttl
        self.locked = False
        self._lock_file: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the advisory lock without waiting; False (and a warning) if another run holds it."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+")  # noqa: SIM115 - held for the run
        except OSError as exc:
            log.warning(
                "cache_dir %s is not writable (%s); the transfer cache will not be saved",
                self.path.parent,
                exc.strerror or exc,
            )
            return False
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            log.warning(
                "transfer cache %s is locked by another ocync run; this run will not persist it",
                self.path,
            )
            return False
        self._lock_file = handle
        self.locked = True
        return True

    def release(self) -> None:
        if self._lock_file is not None:
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        self.locked = False

    def load(self, now: float) -> TransferCache:
        """The saved cache, or an empty one (with a warning) if missing-but-unreadable,
        corrupt (not UTF-8, not JSON, wrong shape, bad checksum), of another format, saved in
        the future, or older than ``ttl`` seconds."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return TransferCache()
        except OSError as exc:
            log.warning("transfer cache %s unreadable (%s); starting empty", self.path, exc.strerror)
            return TransferCache()
        try:
            doc = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError("not an ocync transfer cache")
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')!r} is not {VERSION}")
            payload_text = doc["payload"]
            if not isinstance(payload_text, str) or _checksum(payload_text) != doc.get("checksum"):
                raise ValueError("checksum mismatch")
            saved_at = doc["saved_at"]
            if isinstance(saved_at, bool) or not isinstance(saved_at, int | float):
                raise ValueError("saved_at is not a number")
            if not math.isfinite(saved_at) or saved_at > now:
                # A clock that went back, or a file from another machine: its age is unknown,
                # so cache_ttl cannot vouch for it.
                log.warning(
                    "transfer cache %s is from the future (saved_at %r, now %.0f); "
                    "treating it as expired and starting empty (keeping only which target tags "
                    "ocync owns)",
                    self.path,
                    saved_at,
                    now,
                )
                return TransferCache.ownership_only(json.loads(payload_text))
            if self.ttl is not None and now - saved_at > self.ttl:
                log.warning(
                    "transfer cache %s expired (saved %.0fs ago, cache_ttl %.0fs); starting empty "
                    "(keeping only which target tags ocync owns)",
                    self.path,
                    now - saved_at,
                    self.ttl,
                )
                return TransferCache.ownership_only(json.loads(payload_text))
            payload = json.loads(payload_text)
            if not isinstance(payload, dict):
                raise ValueError("payload is not an object")
            return TransferCache.from_payload(payload)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            # UnicodeDecodeError is a ValueError: a binary or non-UTF-8 file lands here too.
            log.warning("transfer cache %s is corrupt (%s); discarding it", self.path, exc)
            return TransferCache()

    def save(self, cache: TransferCache, now: float) -> None:
        """Atomic write: a temporary file in the same directory, fsync, then os.replace."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload_text = json.dumps(cache.to_payload(), separators=(",", ":"), sort_keys=True)
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "saved_at": now,
            "checksum": _checksum(payload_text),
            "payload": payload_text,
        }
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w") as fh:
                json.dump(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def __repr__(self) -> str:
        return f"<CacheFile {self.path} ttl={self.ttl} locked={self.locked}>"


__all__ = ["FORMAT", "VERSION", "CacheFile"]
