"""HTTP values the handlers exchange with the server adapter: the request (its body an async chunk
iterator), the response (bytes or a slice of stored content), and OCI error bodies with
distribution's messages for the standard codes (OCI Distribution Spec 1.1, "Error Codes").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import trio

from .blobbytes import BlobSource
from .quirks import BodyFault

JSON_TYPE = "application/json; charset=utf-8"
API_VERSION = ("Docker-Distribution-Api-Version", "registry/2.0")

# distribution's messages for the standard codes (registry/api/errcode and api/v2/errors.go).
MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "TAG_INVALID": "manifest tag did not match URI",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "The operation is unsupported.",
    "TOOMANYREQUESTS": "too many requests",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "UNKNOWN": "unknown error",
}


class Body(Protocol):
    """A request body, read once as chunks."""

    content_length: int | None
    bytes_read: int

    def chunks(self) -> AsyncIterator[bytes | bytearray]: ...


class BytesBody:
    """A body already in memory (unit tests, and the server's empty bodies)."""

    def __init__(self, data: bytes = b"", chunk: int = 1 << 20) -> None:
        self._data = data
        self._chunk = chunk
        self.content_length: int | None = len(data)
        self.bytes_read = 0

    def chunks(self) -> AsyncIterator[bytes | bytearray]:
        return self

    def __aiter__(self) -> BytesBody:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.bytes_read >= len(self._data):
            raise StopAsyncIteration
        piece = self._data[self.bytes_read : self.bytes_read + self._chunk]
        self.bytes_read += len(piece)
        return piece


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    client: str
    body: Body = field(default_factory=BytesBody)
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        split = urlsplit(self.target)
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # A slice of stored content to stream instead of `body`.
    source: BlobSource | None = None
    offset: int = 0
    length: int = 0
    fault: BodyFault | None = None
    close: bool = False
    abort: bool = False  # drop the connection without answering (an injected reset)
    # Bookkeeping for stats and the access log.
    kind: str = "other"
    principal: str = ""
    counted: bool = True

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def content_length(self) -> int:
        # HEAD answers advertise the length of a body they do not send.
        return self.length if self.source is not None or self.length else len(self.body)


def error_body(*errors: tuple[str, str, object]) -> bytes:
    items = []
    for code, message, detail in errors:
        item: dict[str, object] = {"code": code, "message": message}
        if detail is not None:
            item["detail"] = detail
        items.append(item)
    return json.dumps({"errors": items}, separators=(",", ":")).encode() + b"\n"


def error(status: int, code: str, detail: object = None, *, message: str | None = None,
          headers: list[tuple[str, str]] | None = None, close: bool = False) -> Response:
    body = error_body((code, message or MESSAGES.get(code, code.lower()), detail))
    return Response(status, [("Content-Type", JSON_TYPE), *(headers or [])], body, close=close)


def json_response(data: object, status: int = 200, content_type: str = JSON_TYPE,
                  headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return Response(status, [("Content-Type", content_type), *(headers or [])], body)
