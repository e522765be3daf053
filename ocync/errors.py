"""The one exception tree of ocync.

    OcyncError                      root; every error we raise on purpose
    +-- ConfigError                 invalid config file or CLI arguments (exit 3)
    +-- ReferenceError_             an image reference that does not parse (exit 3)
    +-- IntegrityError              digest or size mismatch of received content
    +-- ManifestError               manifest bytes that do not parse, or over 4 MiB
    +-- TransportError              connection, timeout, truncated body (temporary)
    |   +-- ConnectError            no connection (refused, DNS, TLS, unreachable)
    |   +-- RequestTimeout          nothing in time (connect, head, body, or a write)
    |   +-- ProtocolError           the peer did not speak HTTP/1.1 as it should
    |   +-- ConnectionClosed        the connection broke or closed mid-exchange
    |   +-- StaleToken              a streamed request got 401: restart with the fresh token
    |   +-- NotAnswering            a host timed out again and again: given up for the run
    +-- RegistryError               the registry answered with an error status
    |   +-- Unauthorized            401/403 after the auth flow (exit 4)
    |   +-- NotFound                404 (NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN)
    |   +-- Throttled               429 or a "secondary rate limit" 403 (temporary)
    +-- NoMatchingPlatform          a platform filter matches nothing in the source index
    +-- ArtifactsMissing            require_artifacts is set and the image has no referrers
    +-- PullQuotaExhausted          the source's pull quota cannot cover the image: deferred (exit 1)
    +-- LayoutError                 an OCI image layout that cannot be read or written

Foreign exceptions (httpx, h11, OSError) are mapped to these in one place with
``raise ... from exc``. ``temporary`` says whether retrying may help.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

E = TypeVar("E", bound="OcyncError")


class OcyncError(Exception):
    """Root of every error ocync raises on purpose."""

    temporary: bool = False
    exit_code: int = 2


def with_message(exc: E, message: str) -> E:
    """A new error like ``exc`` (same class, status, codes, temporariness) saying ``message``:
    raise it ``from exc`` instead of rewriting the caught error's ``args``."""
    new = copy.copy(exc)
    new.args = (message,)
    return new


class ConfigError(OcyncError):
    """The config file or the command line is invalid."""

    exit_code = 3


class ReferenceError_(OcyncError):  # noqa: N801 - avoid shadowing the builtin ReferenceError
    """An image reference that does not parse."""

    exit_code = 3


class IntegrityError(OcyncError):
    """Received content does not match its digest or size."""


class ManifestError(OcyncError):
    """Manifest bytes that do not parse as an OCI/Docker manifest or index, or are too big."""


class TransportError(OcyncError):
    """The network failed us: connection refused or reset, timeout, truncated body."""

    temporary = True


class ConnectError(TransportError):
    """No connection: refused, the name does not resolve, TLS failed, host unreachable."""


class RequestTimeout(TransportError):
    """Nothing arrived (or nothing was taken) within the connect, read or write timeout."""


class ProtocolError(TransportError):
    """The peer broke HTTP/1.1: an answer that is not HTTP, a body cut short of its length."""


class ConnectionClosed(TransportError):
    """The connection broke or was closed by the peer in the middle of an exchange."""


class StaleToken(TransportError):
    """A request with a streamed (non-replayable) body got 401: the token was refreshed, and
    the transfer must restart from its first byte."""


class NotAnswering(TransportError):
    """A host let several requests in a row time out with no answer in between: every
    further request to it fails at once (retrying would only add timeouts)."""

    temporary = False


class NoMatchingPlatform(OcyncError):
    """None of the requested platforms is in the source index (the message lists them)."""


class ArtifactsMissing(OcyncError):
    """``require_artifacts`` is set and the image has no (wanted) referrers."""


class PullQuotaExhausted(OcyncError):
    """The source's pull quota (Docker Hub's manifest GETs per window) cannot cover an image
    without going under ``min_remaining``: the image is deferred to a later run, never sent."""

    exit_code = 1  # work left for a later run, as after an interrupt


class LayoutError(OcyncError):
    """An OCI image layout (or archive) on disk that cannot be read or written: an I/O
    error, or another ocync holding its write lock (exit 2)."""


@dataclass(frozen=True, slots=True)
class OCIErrorEntry:
    """One entry of an OCI error body: ``{"errors":[{"code","message","detail"}]}``."""

    code: str
    message: str = ""


class RegistryError(OcyncError):
    """The registry answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        method: str = "",
        url: str = "",
        errors: Sequence[OCIErrorEntry] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.errors = tuple(errors)
        # 5xx are worth retrying; 4xx are not (except subclasses that say so).
        self.temporary = status >= 500

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)


class Unauthorized(RegistryError):
    """Authentication or authorization failed (401/403 after the token flow)."""

    exit_code = 4


class NotFound(RegistryError):
    """The repository, manifest or blob does not exist (404)."""


class Throttled(RegistryError):
    """The registry asked us to slow down (429, or a 403 secondary rate limit)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.temporary = True


__all__ = [
    "ArtifactsMissing",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "IntegrityError",
    "LayoutError",
    "NoMatchingPlatform",
    "ManifestError",
    "NotAnswering",
    "NotFound",
    "OCIErrorEntry",
    "OcyncError",
    "ProtocolError",
    "PullQuotaExhausted",
    "ReferenceError_",
    "RegistryError",
    "RequestTimeout",
    "StaleToken",
    "Throttled",
    "TransportError",
    "Unauthorized",
    "with_message",
]
