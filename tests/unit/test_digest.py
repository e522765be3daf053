"""Digests and the streaming hasher."""

from __future__ import annotations

import hashlib

import pytest

from ocync.errors import IntegrityError, ReferenceError_
from ocync.oci.digest import Digest, DigestHasher


def test_parse_and_str() -> None:
    text = "sha256:" + "0f" * 32
    d = Digest.parse(text)
    assert (d.algorithm, str(d), d.tag_fallback) == ("sha256", text, "sha256-" + "0f" * 32)
    assert Digest.parse("sha512:" + "a" * 128).algorithm == "sha512"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("sha256:" + "A" * 64, id="uppercase"),
        pytest.param("sha256:" + "a" * 63, id="short"),
        pytest.param("sha256" + "a" * 64, id="no-colon"),
        pytest.param("blake3:" + "a" * 64, id="unknown-algo"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ReferenceError_):
        Digest.parse(text)


def test_hasher_matches_hashlib_over_chunks() -> None:
    data = bytes(range(256)) * 1000
    hasher = DigestHasher()
    for i in range(0, len(data), 777):
        hasher.update(memoryview(data)[i : i + 777])
    assert hasher.size == len(data)
    assert hasher.digest() == Digest("sha256", hashlib.sha256(data).hexdigest()) == Digest.of(data)
    hasher.verify(Digest.of(data), len(data), "blob x")


def test_hasher_verify_names_the_culprit() -> None:
    hasher = DigestHasher()
    hasher.update(b"abc")
    with pytest.raises(IntegrityError, match="blob q: size mismatch: expected 4 bytes, received 3"):
        hasher.verify(Digest.of(b"abc"), 4, "blob q")
    with pytest.raises(IntegrityError, match="blob q: digest mismatch"):
        hasher.verify(Digest.of(b"abd"), 3, "blob q")


class _Chunks:
    def __init__(self, data: bytes, size: int) -> None:
        self.parts = [data[i : i + size] for i in range(0, len(data), size)]

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.parts:
            raise StopAsyncIteration
        return self.parts.pop(0)


async def _drain(chunks: object) -> list[bytes]:
    out: list[bytes] = []
    try:
        async for chunk in chunks:  # type: ignore[attr-defined]
            out.append(chunk)
    except Exception as exc:  # noqa: BLE001 - the test inspects what got through
        exc.got = out  # type: ignore[attr-defined]
        raise
    return out


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 1000])
async def test_verified_chunks_withholds_the_last_chunk_on_mismatch(chunk_size: int) -> None:
    from ocync.errors import TransportError
    from ocync.oci.manifest import Descriptor
    from ocync.registry.blobs import verified_chunks

    data = bytes(range(256)) * 2
    good = Descriptor("x", Digest.of(data), len(data))
    assert b"".join(await _drain(verified_chunks(_Chunks(data, chunk_size), good, "blob g"))) == data
    bad = Descriptor("x", Digest.of(b"other"), len(data))
    with pytest.raises(IntegrityError, match="blob b: digest mismatch") as info:
        await _drain(verified_chunks(_Chunks(data, chunk_size), bad, "blob b"))
    assert len(b"".join(info.value.got)) < len(data)  # type: ignore[attr-defined]
    small = Descriptor("x", Digest.of(data[:-1]), len(data) - 1)
    with pytest.raises(IntegrityError, match="size mismatch"):
        await _drain(verified_chunks(_Chunks(data, chunk_size), small, "blob s"))
    big = Descriptor("x", Digest.of(data + b"!"), len(data) + 1)
    with pytest.raises(TransportError, match="truncated: received 512 of 513"):
        await _drain(verified_chunks(_Chunks(data, chunk_size), big, "blob t"))
