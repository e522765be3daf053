"""Which response bodies the zero-copy relay may move (RFC 9112 section 6.3), no sockets."""

from __future__ import annotations

import pytest

from ocync.registry.bodyrelay import relayed_length


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        pytest.param("GET", 200, [("Content-Length", "42")], 42, id="content-length"),
        pytest.param("GET", 200, [("content-length", "0")], 0, id="empty"),
        pytest.param("GET", 200, [("Content-Length", "5"), ("Content-Length", "5")], 5, id="repeated-same"),
        pytest.param("GET", 200, [("Content-Length", "5"), ("Content-Length", "6")], None, id="conflicting"),
        pytest.param("GET", 200, [("Content-Length", "5"), ("Transfer-Encoding", "chunked")], None, id="te-wins"),
        pytest.param("GET", 200, [], None, id="until-close"),
        pytest.param("GET", 200, [("Content-Length", "-1")], None, id="malformed"),
        pytest.param("HEAD", 200, [("Content-Length", "42")], None, id="head"),
        pytest.param("GET", 204, [("Content-Length", "42")], None, id="no-content"),
        pytest.param("GET", 304, [("Content-Length", "42")], None, id="not-modified"),
        pytest.param("PUT", 201, [("Content-Length", "0")], 0, id="upload-answer"),
    ],
)
def test_relayed_length(method: str, status: int, headers: list[tuple[str, str]], expected: int | None) -> None:
    assert relayed_length(method, status, headers) == expected
