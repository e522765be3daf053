"""Streaming blob copy: the source GET body flows into the target upload bodies in the
chunks it arrives in, SHA-256 updated per chunk, memory bounded by a few chunks per target.

The digest is checked when the received size reaches the descriptor's size, *before* the
last chunk is handed to any upload body: on a mismatch the body generator raises, the
committing request is never completed (distribution-spec "Pushing blobs": the blob exists
only once the final ``PUT ?digest=`` succeeds) and the session is deleted. Upload strategies
come from the target's profile (quirks as data): ``stream_put`` (POST + one streamed PUT),
``single_patch`` (POST + one streamed PATCH + PUT; GHCR, where several PATCHes overwrite each
other) and ``monolithic`` (POST + one buffered PUT). A failed transfer restarts with a fresh
source GET and a fresh upload session, a bounded number of times (:func:`restart_on_temporary`,
the one restart rule; each request inside is retried by the client on its own).
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import trio

from ocync.errors import IntegrityError, OcyncError, Throttled, TransportError, with_message
from ocync.oci.digest import DigestHasher
from ocync.oci.manifest import Descriptor
from ocync.ratelimit.backoff import backoff_delay
from ocync.registry.client import (
    MAX_THROTTLE_RETRIES,
    RegistryClient,
    UploadSession,
    digest_query,
    registry_error,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_OCTET = "application/octet-stream"
# The committing PUT answers 201 (distribution-spec); 200/204 seen from some proxies.
COMMITTED = (201, 200, 204)
# GETs of a blob whose body fails verification, at most (never more than ``attempts``):
# damage in transit is rare and independent per GET, so a third mismatch in a row means the
# source serves it wrong, and every try costs the whole blob.
INTEGRITY_ATTEMPTS = 3


def attempts_for(error: OcyncError, attempts: int) -> int:
    """How many tries a transfer failing with ``error`` gets."""
    return min(attempts, INTEGRITY_ATTEMPTS) if isinstance(error, IntegrityError) else attempts


@dataclass(frozen=True, slots=True)
class BlobTarget:
    """Where a blob goes; ``session`` is an upload already opened (a mount's 202)."""

    client: RegistryClient
    repository: str
    session: UploadSession | None = None


@dataclass(frozen=True, slots=True)
class BlobCopyResult:
    target: BlobTarget
    error: OcyncError | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


class VerifiedChunks:
    """Pass chunks through, hashing each; raise :class:`IntegrityError` before the chunk that
    completes the blob if the digest differs, or as soon as there are too many bytes; a body
    that ends short raises :class:`TransportError` (a truncated transfer is worth a retry).
    With ``received`` the chunks come off the network and a mismatch is temporary too: bytes
    damaged in transit (a flaky proxy, a bad NIC) are usually right on the next GET.

    An iterator object rather than an async generator: an aborted upload leaves nothing
    half-run for the garbage collector."""

    def __init__(
        self, chunks: AsyncIterable[bytes], descriptor: Descriptor, what: str, *, received: bool = False
    ) -> None:
        self._inner = aiter(chunks)
        self._size = descriptor.size
        self._digest = descriptor.digest
        self._what = what
        self._received = received
        self.hasher = DigestHasher(descriptor.digest.algorithm)
        if self._size == 0:
            self.hasher.verify(self._digest, 0, what)

    def _mismatch(self, exc: IntegrityError) -> IntegrityError:
        if self._received:
            exc.temporary = True  # fetch it again, bounded like a truncated body
        return exc

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        hasher = self.hasher
        while True:
            try:
                chunk = await anext(self._inner)
            except StopAsyncIteration:
                if hasher.size < self._size:
                    raise TransportError(
                        f"{self._what}: body truncated: received {hasher.size} of {self._size} bytes"
                    ) from None
                raise
            if chunk:
                break
        if hasher.size + len(chunk) > self._size:
            raise self._mismatch(
                IntegrityError(f"{self._what}: size mismatch: more than the expected {self._size} bytes")
            )
        hasher.update(chunk)
        if hasher.size == self._size:
            try:
                hasher.verify(self._digest, self._size, self._what)
            except IntegrityError as exc:
                raise self._mismatch(exc) from None
        return chunk

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


def verified_chunks(
    chunks: AsyncIterable[bytes], descriptor: Descriptor, what: str, *, received: bool = False
) -> VerifiedChunks:
    return VerifiedChunks(chunks, descriptor, what, received=received)


def aiter_of(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    return aiter(chunks)


@asynccontextmanager
async def _closing(iterator: AsyncIterator[bytes]) -> AsyncIterator[None]:
    """``aclosing`` for any async iterator (only some have ``aclose``)."""
    try:
        yield
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with trio.CancelScope(shield=True):
                await close()


async def upload_blob(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    chunks: AsyncIterable[bytes],
    *,
    session: UploadSession | None = None,
    verify: bool = True,
) -> None:
    """Upload one blob from ``chunks`` with the target profile's strategy (one attempt).

    ``session`` reuses an open upload (a mount's 202). With ``verify`` the chunks are hashed
    here; pass False when they come from :func:`verified_chunks` already. On any failure the
    session is deleted and the error re-raised; the blob is never committed unverified."""
    what = f"blob {descriptor.digest} ({descriptor.size} bytes) to {client.name}/{repository}"
    body = verified_chunks(chunks, descriptor, what) if verify else aiter_of(chunks)
    if session is None:
        session = await client.start_upload(repository)
    profile = client.profile
    strategy = profile.upload_strategy
    if strategy == "monolithic" and descriptor.size > profile.monolithic_max_bytes:
        strategy = "stream_put"
    try:
        async with _closing(body):
            if strategy == "monolithic":
                data = b"".join([bytes(chunk) async for chunk in body])  # chunks may be views of one buffer
                url = digest_query(session.location, descriptor.digest)
                response = await client.send(
                    "upload_put", "PUT", url, repository, content=data, headers={"Content-Type": _OCTET}, ok=COMMITTED
                )
            elif strategy == "single_patch":
                headers = {"Content-Type": _OCTET, "Content-Length": str(descriptor.size)}
                patched = await client.send_stream(
                    "upload_patch", "PATCH", session.location, repository, body, headers, ok=(202, 204)
                )
                if patched.status not in (202, 204):
                    raise registry_error("PATCH", session.location, patched.status, patched.body, what)
                location = client._location(patched, session.location)
                session = UploadSession(repository, location)
                url = digest_query(location, descriptor.digest)
                response = await client.send("upload_put", "PUT", url, repository, content=b"", ok=COMMITTED)
            else:
                headers = {"Content-Type": _OCTET, "Content-Length": str(descriptor.size)}
                url = digest_query(session.location, descriptor.digest)
                response = await client.send_stream("upload_put", "PUT", url, repository, body, headers, ok=COMMITTED)
            if response.status not in COMMITTED:
                raise registry_error("PUT", url, response.status, response.body, what)
    except BaseException:
        # Shield the cleanup and re-raise: the session must not linger half-written.
        await client.cancel_upload(session)
        raise


async def restart_on_temporary(
    op: Callable[[], Awaitable[T]], attempts: int, backoff: Callable[[int], float], *, what: str
) -> T:
    """Run ``op`` (one whole transfer) until it succeeds. A temporary failure restarts it
    after ``backoff(attempt)`` seconds, up to ``attempts`` tries (:func:`attempts_for`: fewer
    for a blob that keeps failing verification); the last one is raised as a new error that
    says so, from the original. A throttle is no failure: the controller already waited it
    out (``RegistryClient`` raises Throttled only for a streamed body it cannot resend), so
    the transfer restarts at once, at most ``MAX_THROTTLE_RETRIES`` times."""
    attempt = 0
    throttles = 0
    while True:
        attempt += 1
        try:
            return await op()
        except Throttled:
            throttles += 1
            attempt -= 1
            if throttles > MAX_THROTTLE_RETRIES:
                raise
            continue
        except OcyncError as exc:
            if not exc.temporary:
                raise
            if attempt >= attempts_for(exc, attempts):
                raise with_message(exc, f"{exc} (gave up after {attempt} attempts)") from exc
            log.info("%s: attempt %d failed (%s); restarting", what, attempt, exc)
        await trio.sleep(backoff(attempt))


async def restart_upload(
    op: Callable[[UploadSession | None], Awaitable[None]],
    session: UploadSession | None,
    attempts: int,
    backoff: Callable[[int], float],
    *,
    what: str,
) -> int:
    """:func:`restart_on_temporary` for one upload: the first attempt gets ``session`` (a
    mount's 202), every later one None (a session is used once, whatever happened: the
    failed attempt deleted it). Returns the number of attempts used."""
    tries = 0

    async def once() -> None:
        nonlocal tries
        tries += 1
        await op(session if tries == 1 else None)

    await restart_on_temporary(once, attempts, backoff, what=what)
    return tries


def jittered(seed: int | None = None) -> Callable[[int], float]:
    """The restart backoff: :func:`ocync.ratelimit.limiter.backoff_delay` on its own rng."""
    rng = random.Random(seed)
    return lambda attempt: backoff_delay(attempt, rng)


async def push_blob(
    client: RegistryClient,
    repository: str,
    descriptor: Descriptor,
    open_chunks: Callable[[], AsyncIterable[bytes]],
    *,
    session: UploadSession | None = None,
    attempts: int | None = None,
    seed: int | None = None,
) -> int:
    """:func:`upload_blob` with restarts: ``open_chunks()`` gives a fresh iterable per
    attempt (a staged file, bytes in memory). Temporary failures restart with a new session.
    Returns the number of attempts used; raises the last error."""
    async def once(use: UploadSession | None) -> None:
        await upload_blob(client, repository, descriptor, open_chunks(), session=use)

    what = f"blob {descriptor.digest.short} to {repository}"
    return await restart_upload(once, session, attempts or client.settings.attempts, jittered(seed), what=what)


async def copy_blob_to(
    source: RegistryClient,
    source_repository: str,
    descriptor: Descriptor,
    target: RegistryClient,
    target_repository: str,
    *,
    session: UploadSession | None = None,
    attempts: int | None = None,
    seed: int | None = None,
) -> int:
    """Copy one blob, one source GET per attempt; raise the last error. Temporary failures
    (connection errors, truncated bodies, 5xx, a token expiring mid-transfer) restart with a
    fresh GET and a fresh session, up to ``attempts`` (default: the source's setting).
    Returns the number of attempts used."""
    what = f"blob {descriptor.digest} ({descriptor.size} bytes) from {source.name}/{source_repository}"
    async def once(use: UploadSession | None) -> None:
        await _copy_once(source, source_repository, descriptor, target, target_repository, use, what)

    return await restart_upload(once, session, attempts or source.settings.attempts, jittered(seed), what=what)


async def copy_blob(
    source: RegistryClient,
    source_repository: str,
    descriptor: Descriptor,
    targets: Sequence[BlobTarget],
    *,
    attempts: int | None = None,
    seed: int | None = None,
) -> list[BlobCopyResult]:
    """:func:`copy_blob_to` for each target in turn, each failure as its result. Every
    target costs its own source GET: pulling once for several targets is the engine's
    staging (:mod:`ocync.engine.staging`)."""
    results = []
    for target in targets:
        try:
            tries = await copy_blob_to(
                source, source_repository, descriptor, target.client, target.repository,
                session=target.session, attempts=attempts, seed=seed,
            )
            results.append(BlobCopyResult(target, None, tries))
        except OcyncError as exc:
            results.append(BlobCopyResult(target, exc, 0))
    return results


@asynccontextmanager
async def open_verified_blob(
    source: RegistryClient, source_repository: str, descriptor: Descriptor, what: str
) -> AsyncIterator[VerifiedChunks]:
    """One GET of the blob, as chunks verified against its digest and size as they arrive
    (a wrong Content-Length fails before any byte is passed on)."""
    async with source.open_blob(source_repository, descriptor.digest) as stream:
        if stream.content_length is not None and stream.content_length != descriptor.size:
            raise IntegrityError(
                f"{what}: size mismatch: expected {descriptor.size} bytes, source sends {stream.content_length}"
            )
        # one consumer takes each chunk before the next is read: one reusable buffer will do
        chunks = verified_chunks(stream.chunks(views=True), descriptor, what, received=True)
        async with _closing(chunks):
            yield chunks


async def _copy_once(
    source: RegistryClient,
    source_repository: str,
    descriptor: Descriptor,
    target: RegistryClient,
    target_repository: str,
    session: UploadSession | None,
    what: str,
) -> None:
    # Open the source first: an upload never holds a window slot waiting for a GET.
    async with open_verified_blob(source, source_repository, descriptor, what) as chunks:
        await upload_blob(target, target_repository, descriptor, chunks, session=session, verify=False)


__all__ = [
    "INTEGRITY_ATTEMPTS",
    "BlobCopyResult",
    "BlobTarget",
    "attempts_for",
    "copy_blob",
    "copy_blob_to",
    "jittered",
    "open_verified_blob",
    "push_blob",
    "restart_on_temporary",
    "restart_upload",
    "upload_blob",
    "verified_chunks",
]
