"""Sans-IO parsing of throttle and budget signals from registry responses.

Observed signals: any 429 (distribution spec, "TOOMANYREQUESTS"); GHCR's hint inside the OCI
error message, ``retry-after: 10.487765ms, allowed: 2000/minute`` (a Go duration); a
``Retry-After`` header (RFC 9110 10.2.3: delta-seconds or an HTTP-date); GitHub's 403 whose
message says "secondary rate limit"; S3-backed storage's 503 "SlowDown". Budget headers:
Docker Hub's ``ratelimit-remaining: 76;w=21600``, GitHub's ``x-ratelimit-remaining`` and
``x-ratelimit-reset`` (epoch seconds), and the IETF draft ``RateLimit`` header.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ocync.errors import ConfigError
from ocync.ratelimit.bucket import RateCap, parse_rate

# Only the head of an error body is inspected (OCI error bodies are small; HTML pages are not).
MAX_BODY_SCAN = 64 * 1024
# A reset value above this is an epoch timestamp (GitHub), below it a delta in seconds.
_EPOCH_THRESHOLD = 1e8


@dataclass(frozen=True, slots=True)
class ThrottleSignal:
    """The registry asked us to slow down; ``retry_after`` is its hint in seconds, if any."""

    retry_after: float | None
    reason: str
    # The cap the registry announced with the throttle (GHCR: "allowed: 2000/minute").
    allowed: RateCap | None = None


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_HINT_RE = re.compile(
    r"retry[- ]after\s*[:=]\s*((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_ALLOWED_RE = re.compile(r"allowed\s*[:=]\s*(\d+\s*/\s*[0-9.]*\s*[a-z]+)", re.IGNORECASE)
_SECONDARY_RE = re.compile(r"secondary\s+rate\s+limit", re.IGNORECASE)
_THROTTLE_CODES = frozenset({"TOOMANYREQUESTS", "SLOWDOWN", "RATE_LIMITED", "RATELIMITED"})


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go ``time.Duration`` string ("10.487765ms", "1m0.5s"); None if it is not one."""
    text = text.strip()
    if not text:
        return None
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match[1]) * _GO_UNITS[match[2]]
        pos = match.end()
    return total if pos == len(text) else None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _finite_nonneg(value: float) -> float | None:
    return max(0.0, value) if math.isfinite(value) else None


def parse_retry_after(
    value: str, *, date: str | None = None, now: float | None = None
) -> float | None:
    """RFC 9110 ``Retry-After``: delta-seconds, or an HTTP-date relative to ``date`` (the
    response's ``Date`` header) or else ``now`` (Unix seconds). None when it cannot be read."""
    value = value.strip()
    try:
        return _finite_nonneg(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    reference = now
    if date is not None:
        try:
            reference = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            reference = now
    if reference is None:
        return None
    return _finite_nonneg(when - reference)


def _body_text(body: bytes) -> tuple[str, tuple[str, ...]]:
    """The searchable text of an error body and its OCI error codes."""
    raw = body[:MAX_BODY_SCAN].decode("utf-8", errors="replace")
    codes: list[str] = []
    parts: list[str] = []
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # garbage or absurdly nested JSON: search the raw text
        return raw, ()
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list):
        for entry in errors:
            if not isinstance(entry, dict):
                continue
            code = entry.get("code")
            if isinstance(code, str):
                codes.append(code.upper())
            for field in ("message", "detail"):
                value = entry.get(field)
                if isinstance(value, str):
                    parts.append(value)
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        parts.append(doc["message"])  # GitHub API style {"message": ...}
    return ("\n".join(parts) if parts else raw), tuple(codes)


def throttle_signal(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> ThrottleSignal | None:
    """The throttle signal carried by a response, or None if it is not a throttle.

    ``now`` (Unix seconds) is only used to resolve an HTTP-date ``Retry-After`` when the
    response has no ``Date`` header, and an epoch ``x-ratelimit-reset``.
    """
    if status < 400:
        return None
    lowered = _lower(headers)
    text, codes = _body_text(body) if body else ("", ())
    secondary = _SECONDARY_RE.search(text) is not None
    throttle_code = next((c for c in codes if c in _THROTTLE_CODES), None)
    budget = budget_from_headers(lowered, now=now)
    exhausted = status == 403 and budget is not None and budget[0] == 0
    if not (status == 429 or secondary or throttle_code or exhausted):
        return None

    retry_after: float | None = None
    hint = _HINT_RE.search(text)
    if hint is not None:
        token = hint[1]
        retry_after = (
            parse_go_duration(token) if not token.replace(".", "").isdigit() else float(token)
        )
    if retry_after is None and "retry-after" in lowered:
        retry_after = parse_retry_after(lowered["retry-after"], date=lowered.get("date"), now=now)
    if retry_after is None and budget is not None and budget[0] == 0:
        retry_after = budget[1]

    allowed: RateCap | None = None
    match = _ALLOWED_RE.search(text)
    if match is not None:
        try:
            allowed = parse_rate(match[1])
        except ConfigError:
            allowed = None

    if secondary:
        reason = f"{status} secondary rate limit"
    elif throttle_code is not None:
        reason = f"{status} {throttle_code}"
    elif status == 429:
        reason = "429 Too Many Requests"
    else:
        reason = f"{status} rate limit budget exhausted"
    return ThrottleSignal(retry_after=retry_after, reason=reason, allowed=allowed)


_INT_RE = re.compile(r"^\s*(-?\d+)")
_RATELIMIT_REMAINING = re.compile(r"(?:\bremaining\s*=\s*|;\s*r\s*=\s*)(\d+)", re.IGNORECASE)
_RATELIMIT_RESET = re.compile(r"(?:\breset\s*=\s*|;\s*t\s*=\s*)(\d+(?:\.\d+)?)", re.IGNORECASE)


def _leading_number(value: str) -> float | None:
    match = re.match(r"^\s*(-?\d+(?:\.\d+)?)", value)
    return float(match[1]) if match else None


@dataclass(frozen=True, slots=True)
class PullQuotaReading:
    """Docker Hub's pull quota as one answer states it: ``limit`` pulls per ``window`` seconds,
    ``remaining`` of them left, counted against ``source`` (an address or an account id)."""

    remaining: int
    limit: int | None = None
    window: float | None = None
    source: str = ""


_QUOTA_VALUE = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+(?:\.\d+)?))?")


def pull_quota_from_headers(headers: Mapping[str, str]) -> PullQuotaReading | None:
    """``ratelimit-remaining: 76;w=21600`` with ``ratelimit-limit: 100;w=21600`` and
    ``docker-ratelimit-source`` (docs.docker.com "View pull rate and limit"), or None when the
    answer carries no remaining count (Docker Hub sends none to unlimited accounts)."""
    lowered = _lower(headers)
    remaining = _QUOTA_VALUE.match(lowered.get("ratelimit-remaining", ""))
    if remaining is None:
        return None
    limit = _QUOTA_VALUE.match(lowered.get("ratelimit-limit", ""))
    window_text = remaining[2] or (limit[2] if limit is not None else None)
    window = float(window_text) if window_text else None
    return PullQuotaReading(
        remaining=int(remaining[1]),
        limit=int(limit[1]) if limit is not None else None,
        window=window if window and math.isfinite(window) else None,
        source=lowered.get("docker-ratelimit-source", "").strip()[:200],
    )


def budget_from_headers(
    headers: Mapping[str, str], *, now: float | None = None
) -> tuple[int, float | None] | None:
    """``(remaining, reset_seconds)`` from budget headers, or None when there are none.

    ``ratelimit-remaining: 76;w=21600`` (Docker Hub), ``x-ratelimit-remaining`` with
    ``x-ratelimit-reset`` (epoch seconds, GitHub; needs ``now``), ``RateLimit: limit=100,
    remaining=50, reset=5`` or ``RateLimit: "default";r=50;t=30`` (IETF drafts).
    """
    lowered = _lower(headers)
    remaining: int | None = None
    reset: float | None = None
    for name in ("ratelimit-remaining", "x-ratelimit-remaining"):
        if name in lowered:
            match = _INT_RE.match(lowered[name])
            if match is not None:
                remaining = max(0, int(match[1]))
                break
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        if name in lowered:
            reset = _leading_number(lowered[name])
            break
    if remaining is None and "ratelimit" in lowered:
        combined = lowered["ratelimit"]
        rem = _RATELIMIT_REMAINING.search(combined)
        if rem is not None:
            remaining = int(rem[1])
            res = _RATELIMIT_RESET.search(combined)
            reset = float(res[1]) if res is not None else reset
    if remaining is None:
        return None
    if reset is not None:
        if reset > _EPOCH_THRESHOLD:
            reset = reset - now if now is not None else None
        if reset is not None:
            reset = _finite_nonneg(reset)
    return remaining, reset


__all__ = [
    "MAX_BODY_SCAN",
    "PullQuotaReading",
    "ThrottleSignal",
    "budget_from_headers",
    "parse_go_duration",
    "parse_retry_after",
    "pull_quota_from_headers",
    "throttle_signal",
]
