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
