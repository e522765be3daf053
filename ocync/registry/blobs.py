"""Streaming blob copy: the source GET body flows into the target upload bodies in the
chunks it arrives in, SHA-256 updated per chunk, memory bounded by a few chunks per target.

The digest is checked when the received size reaches the descriptor's size, *before* the
last chunk is handed to any upload body: on a mismatch the body generator raises, the
committing request is never completed (distribution-spec "Pushing blobs": the blob exists
only once the final ``PUT ?digest=`` succeeds) and the session is deleted. Upload strategies
come from the target's profile (quirks as data): ``stream_put`` (POST + one streamed PUT),
``single_patch`` (POST + one streamed PATCH + PUT; GHCR, where several PATCHes overwrite each
other) and ``monolithic`` (POST + one buffered PUT). A failed transfer restarts with a fresh
source GET and a fresh upload session, a bounded number of times.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from ocync.errors import IntegrityError, OcyncError, Throttled, TransportError
from ocync.oci.digest import DigestHasher
from ocync.oci.manifest import Descriptor
from ocync.registry.client import (
    MAX_THROTTLE_RETRIES,
    RegistryClient,
    UploadSession,
    digest_query,
    registry_error,
)

log = logging.getLogger(__name__)

# Chunks waiting per target when one source feeds several targets (each ~64 KiB as read).
FANOUT_BUFFER = 8
RESTART_BASE = 0.5
RESTART_MAX = 15.0
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
    max_attempts = attempts or client.settings.attempts
    rng = random.Random(seed)
    attempt = 0
    throttles = 0
    while True:
        attempt += 1
        try:
            await upload_blob(client, repository, descriptor, open_chunks(), session=session)
            return attempt
        except Throttled:
            # the controller already waited; a throttle is not a failure (bounded anyway)
            throttles += 1
            attempt -= 1
            if throttles > MAX_THROTTLE_RETRIES:
                raise
            session = None
            continue
        except OcyncError as exc:
            if not exc.temporary:
                raise
            if attempt >= max_attempts:
                exc.args = (f"{exc} (gave up after {attempt} attempts)",)
                raise
            log.info("blob %s to %s: attempt %d failed (%s); restarting", descriptor.digest.short, repository, attempt, exc)
        session = None
        ceiling = min(RESTART_MAX, RESTART_BASE * 2.0 ** (attempt - 1))
        await trio.sleep(ceiling / 2 + rng.random() * ceiling / 2)


async def copy_blob(
    source: RegistryClient,
    source_repository: str,
    descriptor: Descriptor,
    targets: Sequence[BlobTarget],
    *,
    attempts: int | None = None,
    seed: int | None = None,
) -> list[BlobCopyResult]:
    """Copy one blob from the source to every target with one source GET per attempt.

    Returns one result per target (in order). Temporary failures (connection errors,
    truncated bodies, 5xx, a token expiring mid-transfer) restart the failed targets with a
    fresh GET and fresh sessions, up to ``attempts`` (default: the source's setting)."""
    max_attempts = attempts or source.settings.attempts
    rng = random.Random(seed)
    sessions: dict[int, UploadSession | None] = {i: t.session for i, t in enumerate(targets)}
    results: dict[int, BlobCopyResult] = {}
    what = f"blob {descriptor.digest} ({descriptor.size} bytes) from {source.name}/{source_repository}"
    rounds: dict[int, int] = dict.fromkeys(range(len(targets)), 0)
    failures: dict[int, int] = dict.fromkeys(range(len(targets)), 0)
    throttles = 0
    while len(results) < len(targets):
        pending = [
            (i, BlobTarget(targets[i].client, targets[i].repository, sessions[i]))
            for i in range(len(targets))
            if i not in results
        ]
        outcome = await _copy_once(source, source_repository, descriptor, pending, what)
        throttled = False
        for i, error in outcome.items():
            sessions[i] = None  # a session is used once, whatever happened
            rounds[i] += 1
            if isinstance(error, Throttled) and throttles < MAX_THROTTLE_RETRIES:
                throttled = True  # the controller already waited; not a failure
                continue
            if error is not None and error.temporary:
                failures[i] += 1
            if error is None or not error.temporary or failures[i] >= attempts_for(error, max_attempts):
                if error is not None and error.temporary and "gave up after" not in str(error):
                    error.args = (f"{error} (gave up after {failures[i]} attempts)",)
                results[i] = BlobCopyResult(targets[i], error, rounds[i])
        if len(results) < len(targets):
            if throttled:
                throttles += 1
                continue
            failed = [str(outcome[i]) for i in outcome if i not in results]
            attempt = max(failures[i] for i in outcome if i not in results)
            log.info("%s: attempt %d failed (%s); restarting", what, attempt, failed[0] if failed else "")
            ceiling = min(RESTART_MAX, RESTART_BASE * 2.0 ** (attempt - 1))
            await trio.sleep(ceiling / 2 + rng.random() * ceiling / 2)
    return [results[i] for i in range(len(targets))]


async def copy_blob_to(
    source: RegistryClient,
    source_repository: str,
    descriptor: Descriptor,
    target: RegistryClient,
    target_repository: str,
    *,
    session: UploadSession | None = None,
) -> None:
    """Copy one blob to one target; raise its error if it failed."""
    [result] = await copy_blob(source, source_repository, descriptor, [BlobTarget(target, target_repository, session)])
    if result.error is not None:
        raise result.error


async def _copy_once(
    source: RegistryClient,
    source_repository: str,
    descriptor: Descriptor,
    targets: list[tuple[int, BlobTarget]],
    what: str,
) -> dict[int, OcyncError | None]:
    outcome: dict[int, OcyncError | None] = {}
    try:
        # Open the source first: an upload never holds a window slot waiting for a GET.
        async with source.open_blob(source_repository, descriptor.digest) as stream:
            if stream.content_length is not None and stream.content_length != descriptor.size:
                raise IntegrityError(
                    f"{what}: size mismatch: expected {descriptor.size} bytes, source sends {stream.content_length}"
                )
            # one target takes each chunk before the next is read: one reusable buffer will do
            chunks = verified_chunks(stream.chunks(views=len(targets) == 1), descriptor, what, received=True)
            async with _closing(chunks):
                if len(targets) == 1:
                    index, target = targets[0]
                    try:
                        await upload_blob(
                            target.client, target.repository, descriptor, chunks, session=target.session, verify=False
                        )
                        outcome[index] = None
                    except OcyncError as exc:
                        outcome[index] = exc
                else:
                    await _fan_out(chunks, descriptor, targets, outcome)
    except OcyncError as exc:
        for index, _ in targets:
            outcome.setdefault(index, exc)
    return outcome


class _ChannelChunks:
    """One target's share of a fanned-out source; re-raises the source's failure."""

    def __init__(self, receive: trio.MemoryReceiveChannel[bytes | _SourceFailed]) -> None:
        self._receive = receive

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _SourceFailed):
            error = type(item.error)(str(item.error))
            error.temporary = item.error.temporary  # a damaged body is fetched again
            raise error
        return item


class _SourceFailed:
    __slots__ = ("error",)

    def __init__(self, error: OcyncError) -> None:
        self.error = error


async def _fan_out(
    chunks: AsyncIterator[bytes],
    descriptor: Descriptor,
    targets: list[tuple[int, BlobTarget]],
    outcome: dict[int, OcyncError | None],
) -> None:
    """One reader, one upload task per target, bounded channels between them."""
    senders: dict[int, trio.MemorySendChannel[bytes | _SourceFailed]] = {}

    async def upload(index: int, target: BlobTarget, receive: trio.MemoryReceiveChannel[bytes | _SourceFailed]) -> None:
        async with receive:
            try:
                await upload_blob(
                    target.client, target.repository, descriptor, _ChannelChunks(receive), session=target.session, verify=False
                )
                outcome[index] = None
            except OcyncError as exc:
                outcome[index] = exc

    async with trio.open_nursery() as nursery:
        for index, target in targets:
            send, receive = trio.open_memory_channel[bytes | _SourceFailed](FANOUT_BUFFER)
            senders[index] = send
            nursery.start_soon(upload, index, target, receive)
        try:
            async for chunk in chunks:
                for index in list(senders):
                    try:
                        await senders[index].send(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        await senders.pop(index).aclose()
                if not senders:
                    break
        except OcyncError as exc:
            for send in senders.values():
                try:
                    await send.send(_SourceFailed(exc))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        finally:
            for send in senders.values():
                await send.aclose()


__all__ = [
    "INTEGRITY_ATTEMPTS",
    "BlobCopyResult",
    "BlobTarget",
    "attempts_for",
    "copy_blob",
    "copy_blob_to",
    "push_blob",
    "upload_blob",
    "verified_chunks",
]
