"""ocync.registry.neterrors: foreign network exceptions -> one line; URLs redacted."""

from __future__ import annotations

import socket
import ssl

import h11
import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ocync.errors import (
    ConnectError,
    ConnectionClosed,
    ProtocolError,
    RequestTimeout,
    TransportError,
)
from ocync.registry.neterrors import (
    describe,
    error_class,
    is_timeout,
    map_transport_errors,
    redact_url,
    transport_error,
)


def chained(outer: BaseException, *inner: BaseException) -> BaseException:
    """``outer`` raised from ``inner[0]`` raised from ``inner[1]``... as httpx/httpcore chain them."""
    current = outer
    for exc in inner:
        current.__cause__ = exc
        current = exc
    return outer


REFUSED = ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            chained(httpx.ConnectError("all attempts failed"), OSError("all attempts failed"),
                    ExceptionGroup("all attempts failed", [REFUSED])),
            "connection refused", id="trio-happy-eyeballs-refused",
        ),
        pytest.param(chained(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
                     "cannot resolve the host name (DNS)", id="dns"),
        pytest.param(chained(httpx.ConnectError(""), trio.BrokenResourceError(),
                             ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")),
                     "TLS handshake failed", id="tls-to-plain-http"),
        pytest.param(httpx.ConnectTimeout("t"), "no connection within 10 s", id="connect-timeout"),
        pytest.param(httpx.ReadTimeout("t"), "no answer within 60 s", id="read-timeout"),
        pytest.param(trio.TooSlowError(), "no answer within 60 s", id="wire-timeout"),
        pytest.param(h11.RemoteProtocolError("illegal status line: bytearray(b'SSH-2.0')"),
                     "the answer is not HTTP (is this a registry port?)", id="not-http"),
        pytest.param(httpx.RemoteProtocolError("Server disconnected without sending a response."),
                     "the server closed the connection without answering", id="silent-close"),
        pytest.param(h11.RemoteProtocolError("peer closed connection without sending complete message body "
                                             "(received 9 bytes, expected 4514)"),
                     "the connection closed mid-body (9 of 4514 bytes)", id="cut-short"),
        pytest.param(ConnectionResetError(104, "reset"), "connection reset by the server", id="reset"),
        pytest.param(RuntimeError("odd"), "RuntimeError: odd", id="unknown"),
    ],
)
def test_describe(exc: BaseException, expected: str) -> None:
    assert describe(exc, (10.0, 60.0)).startswith(expected)


def test_transport_error_names_host_and_request_without_secrets() -> None:
    error = transport_error("GET", "https://user:pw@storage.test:8443/b/sha256:x?X-Amz-Signature=SECRET",
                            REFUSED)
    assert isinstance(error, TransportError) and error.temporary
    assert str(error) == "storage.test:8443: connection refused (GET /b/sha256:x)"


def test_is_timeout() -> None:
    assert is_timeout(chained(TransportError("x"), trio.TooSlowError()))
    assert is_timeout(httpx.ReadTimeout("t"))
    assert not is_timeout(chained(httpx.ConnectError("x"), REFUSED))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_redact_url_never_raises_nor_leaks(text: str) -> None:
    url = f"https://bob:SECRET@{text}?token=SECRET#frag"
    shown = redact_url(url)
    assert "SECRET" not in shown or "SECRET" in text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["http", "https", ""]))
def test_transport_error_never_raises_nor_leaks(text: str, scheme: str) -> None:
    url = f"{scheme}://bob:SECRET@{text}?sig=SECRET" if scheme else f"{text}?sig=SECRET"
    message = str(transport_error("GET", url, REFUSED))
    assert "connection refused (GET " in message
    assert "SECRET" not in message or "SECRET" in text


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        pytest.param(chained(httpx.ConnectError("x"), REFUSED), ConnectError, id="refused"),
        pytest.param(chained(httpx.ConnectError("x"), socket.gaierror(-2, "unknown")), ConnectError, id="dns"),
        pytest.param(ssl.SSLCertVerificationError("bad"), ConnectError, id="tls"),
        pytest.param(httpx.ReadTimeout("t"), RequestTimeout, id="httpx-read-timeout"),
        pytest.param(trio.TooSlowError(), RequestTimeout, id="trio-fail-after"),
        pytest.param(chained(httpx.ConnectTimeout("t"), TimeoutError()), RequestTimeout, id="connect-timeout"),
        pytest.param(h11.RemoteProtocolError("illegal status line"), ProtocolError, id="not-http"),
        pytest.param(httpx.RemoteProtocolError("peer closed"), ProtocolError, id="httpx-protocol"),
        pytest.param(ConnectionResetError(104, "reset"), ConnectionClosed, id="reset"),
        pytest.param(trio.BrokenResourceError(), ConnectionClosed, id="broken-stream"),
        pytest.param(httpx.ReadError("x"), ConnectionClosed, id="httpx-read-error"),
    ],
)
def test_transport_errors_are_typed_by_cause(exc: BaseException, cls: type[TransportError]) -> None:
    error = transport_error("GET", "https://reg.test/v2/", exc)
    assert type(error) is cls and error_class(exc) is cls
    assert is_timeout(error) is (cls is RequestTimeout)


def test_map_transport_errors_raises_from_the_foreign_exception() -> None:
    cause = httpx.ReadTimeout("t")
    with pytest.raises(RequestTimeout, match=r"^reg\.test: no answer within 7 s \(GET /v2/\)$") as info:
        with map_transport_errors("GET", "https://reg.test/v2/?secret=1", timeouts=(3, 7)):
            raise cause
    assert info.value.__cause__ is cause


def test_map_transport_errors_lets_ours_and_others_through() -> None:
    ours = ConnectError("reg.test: connection refused (GET /v2/)")
    with pytest.raises(ConnectError) as info, map_transport_errors("GET", "https://reg.test/v2/"):
        raise ours
    assert info.value is ours
    with pytest.raises(KeyError), map_transport_errors("GET", "https://reg.test/v2/"):
        raise KeyError("not a network failure")
