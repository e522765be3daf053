"""The results of a sync run: one record per (image, target), counters, and their rendering.

Silence means success: the text form is one line per image synced, then one summary line
(failures are separate lines the CLI prints on stderr). The JSON form carries per-image results, statistics, errors and controller
statistics. Secrets never reach either: errors are stored as their one-line message,
URLs are stripped of any query string and userinfo, Authorization values are cut, and every
credential the run resolved is removed by value before they are recorded.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ocync.engine.plan import exit_code_for
from ocync.engine.prunepolicy import PruneEvent
from ocync.errors import OcyncError, PullQuotaExhausted, Unauthorized
from ocync.registry.auth import known_secrets


class ImageStatus(enum.Enum):
    SYNCED = "synced"
    SKIPPED = "skipped"
    FAILED = "failed"
    # in flight when an interrupt's drain deadline ended it: the reason says how far it got
    # (tag pushed, referrers not copied; or not tagged yet); counted in ``undone``
    INTERRUPTED = "interrupted"
    # not attempted: the source's pull quota (Docker Hub) could not cover it; a later run
    # copies it (exit 1, like work an interrupt left undone)
    DEFERRED = "deferred"


@dataclass(slots=True)
class BlobCounts:
    """What one transfer did with its blobs (and referrers), counted as it goes."""

    transferred: int = 0
    mounted: int = 0
    skipped: int = 0
    bytes: int = 0
    referrers: int = 0


@dataclass(frozen=True, slots=True)
class ImageResult:
    """One tag copied (or not) to one target."""

    mapping: str
    source: str  # e.g. "src/library/alpine:3.19"
    target: str  # e.g. "ghcr/myorg/alpine:3.19"
    status: ImageStatus
    digest: str = ""
    blobs_transferred: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_transferred: int = 0
    referrers: int = 0
    reason: str = ""  # why skipped, or the error line when failed
    auth_failure: bool = False
    seconds: float = 0.0
    # The failure itself (``ocync copy`` raises it: its exit code and its one line).
    error: OcyncError | None = field(default=None, compare=False, repr=False)

    @classmethod
    def synced(
        cls,
        mapping: str,
        source: str,
        target: str,
        digest: str,
        counts: BlobCounts,
        *,
        status: ImageStatus = ImageStatus.SYNCED,
        reason: str = "",
        seconds: float = 0.0,
    ) -> ImageResult:
        """A transfer that ended (synced, or skipped/interrupted with what it did)."""
        return cls(
            mapping=mapping,
            source=source,
            target=target,
            status=status,
            digest=digest,
            blobs_transferred=counts.transferred,
            blobs_mounted=counts.mounted,
            blobs_skipped=counts.skipped,
            bytes_transferred=counts.bytes,
            referrers=counts.referrers,
            reason=reason,
            seconds=seconds,
        )

    @classmethod
    def failed(
        cls,
        mapping: str,
        source: str,
        target: str,
        error: OcyncError,
        *,
        digest: str = "",
        counts: BlobCounts | None = None,
        context: str = "",
        seconds: float = 0.0,
    ) -> ImageResult:
        """A transfer that failed with ``error`` (``context`` prefixes its line)."""
        done = counts if counts is not None else BlobCounts()
        return cls(
            mapping=mapping,
            source=source,
            target=target,
            status=ImageStatus.DEFERRED if isinstance(error, PullQuotaExhausted) else ImageStatus.FAILED,
            digest=digest,
            blobs_transferred=done.transferred,
            blobs_mounted=done.mounted,
            blobs_skipped=done.skipped,
            bytes_transferred=done.bytes,
            reason=context + (redact(str(error)) or type(error).__name__),
            auth_failure=isinstance(error, Unauthorized),
            seconds=seconds,
            error=error,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "source": self.source,
            "target": self.target,
            "status": self.status.value,
            "digest": self.digest,
            "blobs_transferred": self.blobs_transferred,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "bytes": self.bytes_transferred,
            "referrers": self.referrers,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
        }


_URL_QUERY = re.compile(r"(https?://)([^/\s@]*@)?([^\s?]*)\?[^\s]*")
# An Authorization value runs to the end of its line: a token holding a quote, a backslash or
# an escaped CR (``b'Bearer tok\\r'`` in h11's "Illegal header value") must not end it early.
_AUTHORIZATION = re.compile(r"\b(Bearer|BEARER|Basic|BASIC)[ \t]+[^\r\n]*|(?i:\bauthorization:)[^\r\n]*")
REDACTED = "<redacted>"
# Split pieces of a secret shorter than this would blank ordinary words.
_MIN_SECRET_PART = 4
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Drop URL userinfo and query strings (signed storage URLs carry credentials), any
    Authorization-looking value, and every known secret (``secrets``, by default the ones the
    current ``secret_scope`` resolved) in any form a message may show it in."""
    text = _URL_QUERY.sub(lambda m: f"{m.group(1)}{m.group(3)}?…", text)
    text = re.sub(r"(https?://)[^/\s@]*@", r"\1", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m.group(1) or 'Authorization:'} {REDACTED}", text)
    pattern = _secrets_pattern(frozenset(known_secrets() if secrets is None else secrets))
    if pattern is None:
        return text
    text = pattern.sub(REDACTED, text)
    # A secret that overlaps the marker itself can reappear around it: drop what is left
    # (each pass shortens the text, so this ends).
    while pattern.search(text):
        text = pattern.sub("", text)
    return text


def _secret_forms(secret: str) -> set[str]:
    """How a secret can appear in a message: as is, escaped by ``repr`` (of str or bytes) or
    JSON, and the pieces between its control characters (printed on lines of their own)."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    try:
        forms.add(repr(secret.encode())[2:-1])
    except UnicodeEncodeError:  # a lone surrogate: it cannot have been sent either
        pass
    forms.update(part for part in _CONTROL.split(secret) if len(part) >= _MIN_SECRET_PART)
    return {form for form in forms if form}


@functools.lru_cache(maxsize=64)
def _secrets_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets if secret for form in _secret_forms(secret)}
    if not forms:
        return None
    # Longest first: a secret that contains another is removed whole.
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=lambda f: (-len(f), f))))


@dataclass(slots=True)
class RunReport:
    """Everything a run did. Mutable while the run goes; rendered at the end."""

    results: list[ImageResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # run-level (discovery, mapping) errors
    auth_errors: int = 0  # how many of ``errors`` were authentication failures
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    undone: int = 0  # work never finished because of an interrupt (sum of undone_detail)
    # images_interrupted, images_not_started, tags_not_examined, mappings_not_listed
    undone_detail: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    controllers: dict[str, Any] = field(default_factory=dict)  # by endpoint name
    # every principal's controller (several endpoints may share one)
    principals: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    pruned: list[PruneEvent] = field(default_factory=list)  # every tag pruning acted on

    def add(self, result: ImageResult) -> None:
        self.results.append(result)

    def add_error(self, message: str, *, auth_failure: bool = False) -> None:
        self.errors.append(redact(message))
        self.auth_errors += auth_failure

    def count(self, status: ImageStatus) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def blobs_transferred(self) -> int:
        return sum(r.blobs_transferred for r in self.results)

    @property
    def blobs_mounted(self) -> int:
        return sum(r.blobs_mounted for r in self.results)

    @property
    def blobs_skipped(self) -> int:
        return sum(r.blobs_skipped for r in self.results)

    @property
    def bytes_transferred(self) -> int:
        return sum(r.bytes_transferred for r in self.results)

    def exit_code(self) -> int:
        failed = self.count(ImageStatus.FAILED) + len(self.errors)
        auth = sum(1 for r in self.results if r.status is ImageStatus.FAILED and r.auth_failure)
        auth += self.auth_errors
        return exit_code_for(
            self.count(ImageStatus.SYNCED),
            self.count(ImageStatus.SKIPPED),
            failed,
            auth,
            (self.interrupted and self.undone > 0) or self.count(ImageStatus.DEFERRED) > 0,
        )

    def summary_line(self) -> str:
        mib = self.bytes_transferred / (1024 * 1024)
        line = (
            f"images: {self.count(ImageStatus.SYNCED)} synced, {self.count(ImageStatus.SKIPPED)} "
            f"skipped, {self.count(ImageStatus.FAILED)} failed; blobs: {self.blobs_transferred} "
            f"transferred, {self.blobs_mounted} mounted, {self.blobs_skipped} skipped; "
            f"{mib:.1f} MiB; {self.requests} requests, {self.throttled} throttled (429); "
            f"{self.elapsed:.1f}s"
        )
        deleted = sum(1 for p in self.pruned if p.action == "deleted")
        if deleted:
            line += f"; {deleted} tag(s) pruned"
        deferred = self.count(ImageStatus.DEFERRED)
        if deferred:
            line += f"; {deferred} deferred (pull quota)"
        if self.interrupted:
            line += f"; interrupted, {self.undone} left undone"
            parts = [f"{n} {_UNDONE_WORDS.get(k, k)}" for k, n in self.undone_detail.items() if n]
            if parts:
                line += f" ({', '.join(parts)})"
        return line

    def synced_lines(self) -> list[str]:
        """One line per image synced or cut off by an interrupt (skipped ones stay silent): the
        report's stdout part."""
        lines = []
        for r in self.results:
            if r.status is ImageStatus.SYNCED:
                extra = f" (+{r.referrers} referrers)" if r.referrers else ""
                # the summary's (and --json's) words: blobs transferred, mounted, skipped
                lines.append(
                    f"synced {r.source} -> {r.target} {r.digest[:19]} "
                    f"[{r.blobs_transferred} transferred, {r.blobs_mounted} mounted, "
                    f"{r.blobs_skipped} skipped]{extra}"
                )
            elif r.status is ImageStatus.INTERRUPTED:
                lines.append(
                    f"interrupted {r.source} -> {r.target} {r.digest[:19]}: {r.reason} "
                    f"[{r.blobs_transferred} copied, {r.blobs_mounted} mounted, "
                    f"{r.blobs_skipped} present]"
                )
        lines.extend(p.line() for p in self.pruned if p.action in ("deleted", "skipped"))
        return lines

    def problem_lines(self) -> list[str]:
        """One line per image failed and per run-level error (the CLI prints them on stderr)."""
        lines = [
            f"{r.source} -> {r.target}: {r.reason}"
            for r in self.results
            if r.status is ImageStatus.FAILED
        ]
        lines.extend(self.errors)
        return lines

    def deferred_lines(self) -> list[str]:
        """One line per image the source's pull quota deferred to a later run, with why."""
        return [f"{r.source} -> {r.target}: {r.reason}" for r in self.results if r.status is ImageStatus.DEFERRED]

    def describe(self) -> str:
        """Everything in one text: failures, synced images, summary (logs and test messages)."""
        return "\n".join([*(f"FAILED {p}" for p in self.problem_lines()),
                          *(f"DEFERRED {p}" for p in self.deferred_lines()), self.render_text()])

    def render_text(self, *, quiet: bool = False) -> str:
        """Synced images (unless ``quiet``) and the summary line."""
        lines = [] if quiet else self.synced_lines()
        lines.append(self.summary_line())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "exit_code": self.exit_code(),
            "summary": {
                "images_synced": self.count(ImageStatus.SYNCED),
                "images_skipped": self.count(ImageStatus.SKIPPED),
                "images_failed": self.count(ImageStatus.FAILED),
                "images_deferred": self.count(ImageStatus.DEFERRED),
                "blobs_transferred": self.blobs_transferred,
                "blobs_mounted": self.blobs_mounted,
                "blobs_skipped": self.blobs_skipped,
                "bytes": self.bytes_transferred,
                "requests": self.requests,
                "requests_by_kind": dict(sorted(self.requests_by_kind.items())),
                "throttled": self.throttled,
                "elapsed": round(self.elapsed, 3),
                "interrupted": self.interrupted,
                "undone": self.undone,
                "undone_detail": dict(self.undone_detail),
            },
            "images": [r.to_dict() for r in self.results],
            "prune": [p.to_dict() for p in self.pruned],
            "deferred": [
                {"source": r.source, "target": r.target, "reason": r.reason}
                for r in self.results
                if r.status is ImageStatus.DEFERRED
            ],
            "errors": self.problem_lines(),  # failed images' errors, then run-level ones
            "warnings": list(self.warnings),
            "controllers": _jsonable(self.controllers),
            "principals": _jsonable(self.principals),
            "cache": _jsonable(self.cache),
            "plan": _jsonable(self.plan),
            **({"extra": _jsonable(self.extra)} if self.extra else {}),
        }


_UNDONE_WORDS = {
    "images_interrupted": "image(s) cut off in flight",
    "images_not_started": "image(s) not started",
    "tags_not_examined": "tag(s) not examined",
    "mappings_not_listed": "mapping(s) whose tags were never listed",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    return str(value)


__all__ = ["BlobCounts", "ImageResult", "ImageStatus", "RunReport", "redact"]
