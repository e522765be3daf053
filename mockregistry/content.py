"""Serving stored blob content, whole or by `Range` (RFC 9110 section 14), for both the registry's
blob GET and the storage host's signed URLs, with the blob headers distribution sends.
"""

from __future__ import annotations

import re

from .http import Request, Response
from .quirks import FaultInjector
from .store import Store


def blob_headers(digest: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/octet-stream"),
        ("Docker-Content-Digest", digest),
        ("Accept-Ranges", "bytes"),
        ("ETag", f'"{digest}"'),
        ("Cache-Control", "max-age=31536000"),
    ]


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> (start, end inclusive); None = unsatisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def head_response(digest: str, size: int) -> Response:
    resp = Response(200, blob_headers(digest))
    resp.length = size  # advertised Content-Length, no body
    return resp


def content_response(req: Request, store: Store, faults: FaultInjector, digest: str, size: int) -> Response:
    """A GET of stored content: 200, or 206 for a satisfiable `Range`, 416 otherwise."""
    headers = blob_headers(digest)
    start, end = 0, size - 1
    status = 200
    range_text = req.headers.get("range")
    if range_text:
        wanted = parse_range(range_text, size)
        if wanted is None:
            return Response(416, [("Content-Range", f"bytes */{size}"), *headers[:1]])
        start, end = wanted
        status = 206
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    resp = Response(status, headers)
    length = end - start + 1
    if length > 0:
        resp.source = store.open_content(digest)
        resp.offset = start
        resp.length = length
        resp.fault = faults.body_fault(length, digest)
    return resp
