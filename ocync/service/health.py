"""The health and metrics HTTP server: h11 on trio streams, in the service's own trio run (no
thread). One request per connection, GET only; a client that sends nothing for a while is
dropped, so a stuck prober cannot pile up connections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import h11
import trio

log = logging.getLogger("ocync.service.health")

# A probe sends a few hundred bytes; kubelet's own probe timeout defaults to 1s.
REQUEST_TIMEOUT = 10.0
MAX_REQUEST_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


Router = Callable[[str, str], Response]  # (method, path) -> response


async def _receive_request(conn: h11.Connection, stream: trio.SocketStream) -> h11.Request | None:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            return event
        return None  # ConnectionClosed or anything unexpected


async def _send(conn: h11.Connection, stream: trio.SocketStream, response: Response) -> None:
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
        ("connection", "close"),
        ("cache-control", "no-store"),
    ]
    await stream.send_all(conn.send(h11.Response(status_code=response.status, headers=headers)))
    await stream.send_all(conn.send(h11.Data(data=response.body)))
    await stream.send_all(conn.send(h11.EndOfMessage()))


async def handle_connection(stream: trio.SocketStream, route: Router) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    try:
        with trio.move_on_after(REQUEST_TIMEOUT):
            try:
                request = await _receive_request(conn, stream)
            except h11.RemoteProtocolError:
                await _send(conn, stream, Response(400, b'{"error": "bad request"}\n'))
                return
            if request is None:
                return
            method = request.method.decode("ascii", "replace")
            path = request.target.decode("ascii", "replace").split("?", 1)[0]
            await _send(conn, stream, route(method, path))
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        pass  # the prober went away: nothing to answer
    finally:
        await stream.aclose()


async def serve_health(
    route: Router, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on ``host:port`` (port 0: any free port) until cancelled; the bound port is
    reported through ``task_status``."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("health endpoints on http://%s:%d (/healthz, /readyz, /metrics)", host, bound,
             extra={"event": "health_listening", "fields": {"host": host, "port": bound}})
    task_status.started(bound)

    async def handler(stream: trio.SocketStream) -> None:
        await handle_connection(stream, route)

    await trio.serve_listeners(handler, listeners)


__all__ = ["Response", "Router", "handle_connection", "serve_health"]
