"""The one place where foreign network exceptions become :class:`TransportError`.

httpx, httpcore, h11, trio and the socket/ssl modules each raise their own types, chained
several deep (httpx.ConnectError <- httpcore.ConnectError <- OSError <- ExceptionGroup of
ConnectionRefusedError, as trio's happy-eyeballs connect reports it). Users get one line
naming the host and what went wrong ("connection refused", "cannot resolve host"); URLs in
messages are redacted (no query: signed storage URLs carry credentials; no userinfo).
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import h11
import httpx
import trio

from ocync.errors import (
    ConnectError,
    ConnectionClosed,
    ProtocolError,
    RequestTimeout,
    TransportError,
)

# h11: "peer closed connection without sending complete message body (received 2590 bytes,
# expected 4514)".
_CUT_SHORT = re.compile(r"received (\d+) bytes, expected (\d+)")
# How deep to follow __cause__/__context__ and exception groups (the chains seen are <= 5).
_MAX_CHAIN = 16


def redact_url(url: str) -> str:
    """A URL for messages and logs: scheme, host and path only (no query, no userinfo)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[::1/x": cut by hand, printable characters only
        text = re.sub(r"//[^/@]*@", "//", url.split("?", 1)[0].split("#", 1)[0])
        return "".join(c for c in text if c.isprintable())[:200]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


class RedactedURLs(logging.Filter):
    """Strip queries and userinfo from the URLs httpx logs (``HTTP Request: GET <url>``):
    signed storage URLs and upload locations carry credentials in their query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of any exception group on the way."""
    todo = [exc]
    seen: set[int] = set()
    while todo and len(seen) < _MAX_CHAIN:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        nxt = current.__cause__ or current.__context__
        if nxt is not None:
            todo.append(nxt)


def is_timeout(exc: BaseException) -> bool:
    """True when the failure was a timeout (no connection or no answer in time): our typed
    :class:`RequestTimeout`, or a foreign timeout anywhere in the chain (what the mapping reads)."""
    return isinstance(exc, RequestTimeout) or any(
        isinstance(e, httpx.TimeoutException | trio.TooSlowError | TimeoutError) for e in _chain(exc)
    )


def describe(exc: BaseException, timeouts: tuple[float, float] | None = None) -> str:
    """What went wrong, in a few words a user understands; ``timeouts`` = (connect, read)."""
    connect_s, read_s = timeouts or (None, None)
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, socket.gaierror):
            return "cannot resolve the host name (DNS)"
        if isinstance(e, ssl.SSLCertVerificationError):
            reason = getattr(e, "verify_message", None) or "certificate verify failed"
            return f"TLS certificate not trusted ({reason})"
        if isinstance(e, ssl.SSLError):
            reason = getattr(e, "reason", None) or str(e)[:120] or "handshake failed"
            if "WRONG_VERSION_NUMBER" in reason:
                return "TLS handshake failed: the server speaks plain HTTP? (write http://host)"
            return f"TLS handshake failed ({reason})"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "host unreachable"
    for e in chain:
        if isinstance(e, httpx.ConnectTimeout):
            return f"no connection within {connect_s:g} s" if connect_s else "connect timed out"
        if isinstance(e, httpx.TimeoutException | trio.TooSlowError | TimeoutError):
            return f"no answer within {read_s:g} s" if read_s else "timed out"
        if isinstance(e, h11.RemoteProtocolError | httpx.RemoteProtocolError):
            text = str(e)
            cut = _CUT_SHORT.search(text)
            if cut is not None:
                return f"the connection closed mid-body ({cut.group(1)} of {cut.group(2)} bytes)"
            if "disconnected" in text.lower() or "without a response" in text.lower():
                return "the server closed the connection without answering"
            if "illegal status line" in text or "malformed" in text.lower():
                return "the answer is not HTTP (is this a registry port?)"
            return f"invalid HTTP from the server ({text[:120]})"
        if isinstance(e, trio.BrokenResourceError | trio.ClosedResourceError | httpx.NetworkError):
            text = str(e)[:120]
            return f"the connection broke ({text})" if text else "the connection broke"
    text = str(exc)[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# What the transports may raise from below: httpx (control plane), h11 and trio streams (the
# wire), the socket and ssl modules (OSError) under both.
FOREIGN_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError, httpx.StreamError, h11.ProtocolError, OSError,
    trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
)


def error_class(exc: BaseException) -> type[TransportError]:
    """The most specific :class:`TransportError` for a foreign failure (httpx's
    ``HTTPCORE_EXC_MAP`` idea): timeouts first, as the retry policy counts them apart."""
    if is_timeout(exc):
        return RequestTimeout
    chain = list(_chain(exc))
    if any(isinstance(e, socket.gaierror | ssl.SSLError | ConnectionRefusedError | httpx.ConnectError) or (
        isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
    ) for e in chain):
        return ConnectError
    if any(isinstance(e, h11.ProtocolError | httpx.ProtocolError) for e in chain):
        return ProtocolError
    if any(isinstance(e, OSError | trio.BrokenResourceError | trio.ClosedResourceError | httpx.NetworkError)
           for e in chain):
        return ConnectionClosed
    return TransportError


@contextmanager
def map_transport_errors(
    method: str, url: str, *, timeouts: tuple[float, float] | None = None, during: str = ""
) -> Iterator[None]:
    """Foreign network exceptions raised inside become one typed :class:`TransportError`
    (``raise ... from exc``); ours pass through (httpcore's ``map_exceptions``)."""
    try:
        yield
    except TransportError:
        raise
    except FOREIGN_ERRORS as exc:
        raise transport_error(method, url, exc, timeouts=timeouts, during=during) from exc


def transport_error(
    method: str, url: str, exc: BaseException, *, timeouts: tuple[float, float] | None = None,
    during: str = "",
) -> TransportError:
    """``host: what went wrong (METHOD /path)``, chained to ``exc`` by the caller's ``from``."""
    shown = redact_url(url)
    _, sep, rest = shown.partition("://")
    if sep:
        host, _, path = rest.partition("/")
        path = "/" + path
    else:
        host, path = "registry", shown or "/"
    what = describe(exc, timeouts)
    suffix = f" {during}" if during and "body" not in what else ""
    return error_class(exc)(f"{host}: {what}{suffix} ({method} {path})")


__all__ = [
    "FOREIGN_ERRORS",
    "RedactedURLs",
    "describe",
    "error_class",
    "is_timeout",
    "map_transport_errors",
    "redact_url",
    "transport_error",
]
