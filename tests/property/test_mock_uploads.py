"""Uploads under random chunkings: the generic profile assembles exactly the bytes sent, GHCR keeps
only the last PATCH; memory and disk stores agree; served ranges are exact slices."""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from mockregistry.app import Registry
from mockregistry.http import BytesBody, Request, Response
from mockregistry.quirks import MockOptions
from mockregistry.server import build_registry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def call(reg: Registry, method: str, target: str, body: bytes = b"",
               headers: dict[str, str] | None = None, chunk: int = 1 << 20) -> Response:
    req = Request(method, target, headers or {}, "127.0.0.1", BytesBody(body, chunk))
    return await reg.handle(req)


def path_of(resp: Response) -> str:
    loc = resp.header("Location") or ""
    return "/" + loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc


async def push(reg: Registry, data: bytes, cuts: list[int], ranged: bool, wire_chunk: int) -> Response:
    post = await call(reg, "POST", "/v2/p/blobs/uploads/")
    loc = path_of(post)
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        if start == end:
            continue
        headers = {"content-range": f"{start}-{end - 1}"} if ranged else {}
        resp = await call(reg, "PATCH", loc, data[start:end], headers, chunk=wire_chunk)
        assert resp.status == 202
        loc = path_of(resp)
    sep = "&" if "?" in loc else "?"
    return await call(reg, "PUT", f"{loc}{sep}digest={sha(data)}")


def read_back(reg: Registry, digest: str, start: int = 0, end: int | None = None) -> bytes:
    source = reg.store.open_content(digest)
    end = source.length if end is None else end
    out = bytearray()
    while start + len(out) < end:
        piece = source.read(start + len(out), end - start - len(out))
        assert len(piece) > 0
        out += piece
    source.close()
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=6),
       ranged=st.booleans(), wire_chunk=st.integers(1, 2048), disk=st.booleans())
def test_generic_upload_assembles_every_chunk(data: bytes, cuts: list[int], ranged: bool,
                                              wire_chunk: int, disk: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg = build_registry(MockOptions(storage_dir=Path(tmp) if disk else None), clock=time.monotonic)
        resp = trio.run(push, reg, data, cuts, ranged, wire_chunk)
        assert resp.status == 201, resp.body
        assert read_back(reg, sha(data)) == data
        lo, hi = sorted((cuts + [0, len(data)])[:2])
        hi = min(max(hi, lo), len(data))
        assert read_back(reg, sha(data), min(lo, len(data)), hi) == data[min(lo, len(data)):hi]


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=2, max_size=3000), cuts=st.lists(st.integers(1, 2999), min_size=1, max_size=4))
def test_ghcr_keeps_only_the_last_patch(data: bytes, cuts: list[int]) -> None:
    reg = build_registry(MockOptions(profile="ghcr"), clock=time.monotonic)
    bounds = [0, *sorted({c % len(data) or 1 for c in cuts}), len(data)]
    parts = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a != b]

    async def run() -> tuple[Response, Response]:
        post = await call(reg, "POST", "/v2/acme/p/blobs/uploads/")
        loc = path_of(post)
        for part in parts:
            loc = path_of(await call(reg, "PATCH", loc, part))
        whole = await call(reg, "PUT", f"{loc}?digest={sha(data)}")
        # The session is gone after DIGEST_INVALID; re-upload the last part alone: it is what stayed.
        post = await call(reg, "POST", "/v2/acme/p/blobs/uploads/")
        loc = path_of(await call(reg, "PATCH", path_of(post), parts[-1]))
        last = await call(reg, "PUT", f"{loc}?digest={sha(parts[-1])}")
        return whole, last

    whole, last = trio.run(run)
    if len(parts) > 1:
        assert whole.status == 400
        assert not reg.store.has_content(sha(data)) or parts[-1] == data
    else:
        assert whole.status == 201
    assert last.status == 201
