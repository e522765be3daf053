"""Blob bodies without per-chunk copies: a response body of known Content-Length is received
with ``recv_into`` one preallocated buffer and handed on as memoryview slices of it (h11 parses
only the head), and a staged file goes out with ``os.sendfile`` where the socket allows it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import h11
import trio

# One buffer per relayed body: 1 MiB receives keep syscalls few (a 1 GiB blob is ~1000-4000
# receives over loopback) at a fixed 1 MiB of memory per body in flight.
RELAY_BUFFER = 1024 * 1024
# os.sendfile moves at most this much per call, so a frozen peer is noticed per piece.
SENDFILE_PIECE = 8 * 1024 * 1024
_EMPTY = memoryview(b"")


def relayed_length(method: str, status: int, headers: Sequence[tuple[str, str]]) -> int | None:
    """The body length a relay can move, or None when h11 must frame the body itself.

    RFC 9112 section 6.3: HEAD answers and 1xx/204/304 carry no body, Transfer-Encoding overrides
    Content-Length, and only a single well-formed Content-Length fixes the length."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return None
    lengths = [v.strip() for k, v in headers if k.lower() == "content-length"]
    if any(k.lower() == "transfer-encoding" for k, _ in headers) or len(set(lengths)) != 1:
        return None
    return int(lengths[0]) if lengths[0].isdigit() else None


def raw_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The trio socket under a plain TCP stream (None under TLS: the bytes need decrypting)."""
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


class BodyEndedEarly(h11.RemoteProtocolError):
    """The peer closed the connection before Content-Length bytes arrived; worded and typed as
    h11 reports the same event, so errors read the same whichever path received the body."""

    def __init__(self, received: int, length: int) -> None:
        super().__init__(
            f"peer closed connection without sending complete message body "
            f"(received {received} bytes, expected {length})"
        )
        self.received = received
        self.length = length


class ReceiveRelay:
    """Exactly ``length`` body bytes from ``stream``: first what h11 had already buffered past
    the head (``first``), then ``recv_into`` one reusable buffer. Each :meth:`receive` returns a
    view valid until the next call; an empty view once ``length`` bytes were received."""

    __slots__ = ("_buffer", "_first", "_left", "_socket", "_stream", "length", "overflow")

    def __init__(self, stream: trio.abc.Stream, length: int, first: bytes, buffer_size: int = RELAY_BUFFER) -> None:
        self.length = length
        self._stream = stream
        self._socket = raw_socket(stream)
        # bytes past the body mean the server spoke out of turn: the connection is not reused
        self.overflow = len(first) > length
        self._first = memoryview(first)[:length] if first else None
        self._left = length - (len(self._first) if self._first is not None else 0)
        size = max(1, min(buffer_size, self._left))
        self._buffer = memoryview(bytearray(size)) if self._socket is not None and self._left else _EMPTY

    @property
    def done(self) -> bool:
        return self._left == 0 and self._first is None

    @property
    def received(self) -> int:
        return self.length - self._left - (len(self._first) if self._first is not None else 0)

    async def receive(self) -> memoryview:
        """The next piece (raises :class:`BodyEndedEarly`, OSError or trio's stream errors)."""
        first = self._first
        if first is not None:
            self._first = None
            await trio.lowlevel.checkpoint()
            return first
        left = self._left
        if not left:
            await trio.lowlevel.checkpoint()
            return _EMPTY
        sock = self._socket
        if sock is not None:
            got = await _fill(sock, self._buffer[: min(left, len(self._buffer))])
            view = self._buffer[:got]
        else:
            data = await self._stream.receive_some(min(left, RELAY_BUFFER))
            got = len(data)
            if got > left:  # a TLS record may hold more than we asked for: never
                self.overflow = True
                got = left
            view = memoryview(data)[:got]
        if not got:
            raise BodyEndedEarly(self.length - left, self.length)
        self._left = left - got
        return view


async def _fill(sock: trio.socket.SocketType, buffer: memoryview) -> int:
    """Receive into ``buffer`` all the kernel holds (up to its size), waiting only while it
    holds nothing: one pass through the caller's pipeline then moves ~a buffer, not one TCP
    segment's worth (over loopback a wakeup finds 64 KiB, a drain a few MiB). Returns 0 at EOF.
    A schedule point whether or not it waited, as every trio operation is."""
    fd = sock.fileno()
    got = 0
    waited = False
    while got < len(buffer):
        try:
            n = os.readv(fd, [buffer[got:]])  # the socket is non-blocking (trio's)
        except BlockingIOError:
            if got:
                break
            await trio.lowlevel.wait_readable(fd)
            waited = True
            continue
        if not n:
            break
        got += n
    if not waited:
        await trio.lowlevel.checkpoint()
    return got


class FileSpan:
    """A stand-in for ``count`` bytes of an open file in an h11 ``Data`` event: h11 counts it
    against Content-Length (its documented sendfile support) and the bytes go out with
    ``os.sendfile`` (:func:`send_file`)."""

    __slots__ = ("count", "fd", "offset")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __bytes__(self) -> bytes:
        """The bytes themselves (a read of at most one piece, from the page cache when staged)."""
        data = os.pread(self.fd, self.count, self.offset)
        if len(data) != self.count:
            raise BrokenPipeError(errno.EPIPE, "file ended before its declared length")
        return data


class StagedFile:
    """A staged blob file as an upload body: :class:`FileSpan` pieces that the wire sends with
    ``os.sendfile`` (the bytes never enter this process); ``bytes(span)`` reads one where a
    consumer needs the bytes (a small monolithic PUT). Close with :meth:`aclose`."""

    def __init__(self, path: os.PathLike[str] | str, size: int) -> None:
        self._path = path
        self._size = size
        self._offset = 0
        self._fd: int | None = None

    def __aiter__(self) -> StagedFile:
        return self

    async def __anext__(self) -> FileSpan:
        if self._fd is None:
            self._fd = await trio.to_thread.run_sync(os.open, self._path, os.O_RDONLY)
        else:
            await trio.lowlevel.checkpoint()
        if self._offset >= self._size:
            raise StopAsyncIteration
        span = FileSpan(self._fd, self._offset, min(SENDFILE_PIECE, self._size - self._offset))
        self._offset += span.count
        return span

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


async def send_file(stream: trio.abc.Stream, span: FileSpan, idle_seconds: float) -> None:
    """Write ``span`` to ``stream``: ``os.sendfile`` on a plain TCP socket (the kernel moves the
    pages), else reads of one relay buffer sent with ``send_all`` (TLS encrypts in user space).
    A peer that takes nothing for ``idle_seconds`` raises ``trio.TooSlowError``."""
    sock = raw_socket(stream)
    offset, end = span.offset, span.offset + span.count
    if sock is not None and hasattr(os, "sendfile"):
        while offset < end:
            await trio.lowlevel.checkpoint()
            try:
                sent = os.sendfile(sock.fileno(), span.fd, offset, min(end - offset, SENDFILE_PIECE))
            except BlockingIOError:
                with trio.fail_after(idle_seconds):
                    await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                break  # this file or socket does not sendfile: copy the rest
            if not sent:
                raise BrokenPipeError(errno.EPIPE, "file ended before its declared length")
            offset += sent
    buffer = memoryview(bytearray(min(RELAY_BUFFER, max(1, end - offset))))
    while offset < end:
        got = await trio.to_thread.run_sync(os.preadv, span.fd, [buffer[: end - offset]], offset)
        if not got:
            raise BrokenPipeError(errno.EPIPE, "file ended before its declared length")
        with trio.fail_after(idle_seconds):
            await stream.send_all(buffer[:got])
        offset += got


__all__ = [
    "RELAY_BUFFER",
    "BodyEndedEarly",
    "FileSpan",
    "ReceiveRelay",
    "StagedFile",
    "raw_socket",
    "relayed_length",
    "send_file",
]
