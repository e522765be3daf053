"""Content digests (OCI image-spec, descriptor.md "Digests") and the streaming hasher.

A digest is ``algorithm:encoded``; we accept sha256 (64 hex) and sha512 (128 hex), the two
algorithms the spec registers. The hasher is fed chunk by chunk as bytes flow past.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ocync.errors import IntegrityError, ReferenceError_

# image-spec descriptor.md: registered algorithms and their encoded lengths.
_ENCODED_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-f0-9]+)$")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A content digest such as ``sha256:<64 hex>``."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if match is None:
            raise ReferenceError_(f"invalid digest {text[:80]!r}: expected algorithm:hex")
        algorithm, encoded = match.group(1), match.group(2)
        expected = _ENCODED_LENGTH.get(algorithm)
        if expected is None:
            raise ReferenceError_(f"unsupported digest algorithm {algorithm!r} in {text[:80]!r}")
        if len(encoded) != expected:
            raise ReferenceError_(
                f"invalid digest {text[:80]!r}: {algorithm} needs {expected} hex characters"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` (whole bytes; use :class:`DigestHasher` for streams)."""
        if algorithm not in _ENCODED_LENGTH:
            raise ReferenceError_(f"unsupported digest algorithm {algorithm!r}")
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @property
    def tag_fallback(self) -> str:
        """The referrers tag-schema fallback tag: ``sha256-<hex>`` (distribution-spec)."""
        return f"{self.algorithm}-{self.encoded}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.encoded[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


class DigestHasher:
    """Feed chunks as they pass; then compare with the expected digest and size."""

    __slots__ = ("_hash", "algorithm", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _ENCODED_LENGTH:
            raise ReferenceError_(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())

    def verify(self, expected: Digest, expected_size: int | None, what: str) -> None:
        """Raise :class:`IntegrityError` naming ``what`` when digest or size differ."""
        if expected_size is not None and self.size != expected_size:
            raise IntegrityError(
                f"{what}: size mismatch: expected {expected_size} bytes, received {self.size}"
            )
        actual = self.digest()
        if actual != expected:
            raise IntegrityError(f"{what}: digest mismatch: expected {expected}, computed {actual}")

    def __repr__(self) -> str:
        return f"DigestHasher({self.algorithm}, size={self.size})"


__all__ = ["Digest", "DigestHasher"]
