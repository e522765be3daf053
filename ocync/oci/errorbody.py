"""What an error answer says (pure): the OCI error body (distribution-spec "Error Codes",
``{"errors":[{"code","message","detail"}]}``, size-capped), what a bare status means, the
error class a status maps to, and a digest a registry sent in a header.
"""

from __future__ import annotations

import json

from ocync.errors import (
    NotFound,
    OCIErrorEntry,
    ReferenceError_,
    RegistryError,
    Throttled,
    Unauthorized,
)
from ocync.oci.digest import Digest

# Error bodies are read up to this size (OCI error JSON is small; HTML error pages are not).
MAX_ERROR_BODY = 64 * 1024

# What a bare status means when the answer carries no OCI error body (HEAD answers never do).
STATUS_MEANING = {
    400: "bad request",
    401: "authentication required",
    403: "access denied",
    404: "not found",
    405: "not supported by this registry",
    413: "too large for this registry",
    500: "registry-side error",
    502: "bad gateway",
    503: "registry unavailable",
    504: "gateway timeout",
}


def parse_oci_errors(body: bytes) -> tuple[OCIErrorEntry, ...]:
    """``{"errors":[{"code","message"}]}`` (distribution-spec "Error Codes"), size-capped."""
    if not body or len(body) > MAX_ERROR_BODY:
        return ()
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return ()
    entries = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return ()
    out = []
    for entry in entries[:20]:
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            message = entry.get("message")
            out.append(OCIErrorEntry(entry["code"][:64], message[:300] if isinstance(message, str) else ""))
    return tuple(out)


def status_error_class(status: int) -> type[RegistryError]:
    if status in (401, 403):
        return Unauthorized
    if status == 404:
        return NotFound
    if status == 429:
        return Throttled
    return RegistryError


def status_error(subject: str, status: int, body: bytes, *, method: str = "", url: str = "") -> RegistryError:
    """The error for a non-success answer, of the right class, with one clear line
    (``url`` already redacted)."""
    errors = parse_oci_errors(body)
    detail = "; ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors)
    detail = detail or STATUS_MEANING.get(status, "")
    message = f"{subject}: HTTP {status}" + (f" ({detail})" if detail else "")
    return status_error_class(status)(message, status=status, method=method, url=url, errors=errors)


def header_digest(value: str, what: str) -> Digest:
    """A digest a registry sent in a header; a malformed one is the registry's fault
    (RegistryError), not the user's (ReferenceError_, exit 3)."""
    try:
        return Digest.parse(value.strip())
    except ReferenceError_:
        raise RegistryError(f"{what}: the registry sent an invalid Docker-Content-Digest {value[:80]!r}") from None


__all__ = [
    "MAX_ERROR_BODY",
    "STATUS_MEANING",
    "header_digest",
    "parse_oci_errors",
    "status_error",
    "status_error_class",
]
