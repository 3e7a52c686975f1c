"""The HTTP server's connections: bounded in number and in how long a request may take to arrive.

A client that connects and sends nothing, or its headers a byte at a time, costs the server a
file descriptor for as long as it likes; enough of them and the server cannot accept anyone,
`/health` included. So:

- a request's headers must be complete within `header_timeout_s` of the connection opening (or,
  between requests on a kept-alive connection, of their first byte); otherwise the connection is
  closed, with a 408 when part of a request had arrived. (An idle kept-alive connection is closed
  by uvicorn after 5 s; a body has its own bound in `BodyLimitMiddleware`.)
- at most `cap` connections are open: a connection past the cap closes the oldest connection
  that has not sent a request yet (then the oldest idle between requests), so a flood of idle
  sockets makes room for the clients that do send a request. When every open connection is busy
  with a request, a new connection's requests get a 503 that says so.
- the cap stays below the open-files limit, which `raise_open_files_limit` lifts to the hard limit
  at start, leaving room for the kernels' own descriptors (about 20 each).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Final

from starlette.types import Receive, Scope, Send

from python_mcp_server.compat.uvicorn_private import Connection, watched_protocol
from python_mcp_server.middleware._responses import send_json

logger = logging.getLogger(__name__)

# descriptors the server needs beside its connections: a base, and per kernel (sockets to the
# kernel, its process, its cgroup files) with some slack; measured about 8 and 20
BASE_DESCRIPTORS: Final = 64
DESCRIPTORS_PER_KERNEL: Final = 24
MIN_CONNECTIONS: Final = 16
MIN_BACKLOG: Final = 8
MAX_BACKLOG: Final = 128
IN_FLIGHT_BACKLOGS: Final = 4  # accepted, being set up, being closed: see `connection_limits`
_LOG_EVERY_S: Final = 10.0
SERVER_BUSY = -32000


def raise_open_files_limit() -> int:
    """Lift the soft open-files limit to the hard one; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # an unlimited hard limit (macOS) still has a ceiling the kernel enforces: try a few
    targets = [hard] if hard != resource.RLIM_INFINITY else [1 << 20, 1 << 16, 10240]
    for target in targets:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.debug("could not raise the open-files limit to %d: %s", target, exc)
            continue
        logger.debug("open-files limit raised from %d to %d", soft, target)
        return target
    return soft


def connection_limits(max_connections: int, open_files: int, kernels: int) -> tuple[int, int]:
    """(cap, backlog): the most connections to hold, and how many may wait to be accepted.

    The cap is `max_connections`, or fewer if the open-files limit would run out first with
    `kernels` kernels running. asyncio accepts up to `backlog` connections at a time before the
    guard sees any of them, and closes a connection a loop turn after being asked: a flood holds
    a few backlogs of descriptors beyond the cap, which the cap leaves room for.
    """
    room = open_files - BASE_DESCRIPTORS - DESCRIPTORS_PER_KERNEL * kernels
    backlog = max(MIN_BACKLOG, min(MAX_BACKLOG, room // 16))
    cap = min(max_connections, max(MIN_CONNECTIONS, room - IN_FLIGHT_BACKLOGS * backlog))
    if cap < max_connections:
        logger.warning(
            "the open-files limit (%d) leaves room for %d connections beside %d kernels, fewer "
            "than --max-connections %d; raise the limit (ulimit -n) to serve more clients",
            open_files,
            cap,
            kernels,
            max_connections,
        )
    return cap, backlog


def refusal_message(cap: int) -> str:
    return (
        f"The server is at its limit of {cap} open connections and every one is busy with a "
        "request. Retry in a moment; if this persists, the operator can raise --max-connections "
        "(and the open-files limit, ulimit -n)."
    )


def timeout_response(header_timeout_s: float) -> bytes:
    text = (
        f"The request headers did not arrive within {header_timeout_s:g} s; the server closed "
        "the connection. Send the whole request at once."
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
    )


@dataclass
class _Open:
    opened: float
    timer: asyncio.TimerHandle | None = None
    partial: bool = False  # part of a request arrived, its headers are not complete


class ConnectionGuard:
    """Watches every connection (see `compat.uvicorn_private.watched_protocol`)."""

    def __init__(self, *, cap: int, header_timeout_s: float, backlog: int = MAX_BACKLOG) -> None:
        self.cap = cap
        self.backlog = backlog  # uvicorn's `backlog` setting
        self.header_timeout_s = header_timeout_s
        self._open: dict[Connection, _Open] = {}  # oldest first
        self._fresh: dict[Connection, None] = {}  # no request yet, oldest first
        self._timeout_response = timeout_response(header_timeout_s)
        self._refuse = _Refusal(refusal_message(cap))
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        self._logged = 0.0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocol_class(self) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol, watched by this guard (uvicorn's `http=` setting)."""
        return watched_protocol(self)

    # ---------------------------------------------------------------- watcher

    def opened(self, connection: Connection) -> None:
        state = _Open(time.monotonic())
        self._open[connection] = state
        self._fresh[connection] = None
        self._arm(connection, state)
        while len(self._open) > self.cap:
            victim = self._idlest(connection)
            if victim is None:
                self.refused += 1
                connection.refuse_requests(self._refuse)
                self._note("at the connection limit (%d) with every connection busy", self.cap)
                return
            self.evicted += 1
            self._forget(victim)
            victim.close()
            self._note("at the connection limit (%d): closing idle connections", self.cap)

    def request_started(self, connection: Connection) -> None:
        state = self._open.get(connection)
        if state is None:
            return
        self._fresh.pop(connection, None)
        state.partial = False
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None

    def bytes_between_requests(self, connection: Connection) -> None:
        state = self._open.get(connection)
        if state is None:
            return
        state.partial = True
        if state.timer is None:
            self._arm(connection, state)

    def closed(self, connection: Connection) -> None:
        self._forget(connection)

    # ---------------------------------------------------------------- inside

    def _arm(self, connection: Connection, state: _Open) -> None:
        loop = asyncio.get_running_loop()
        state.timer = loop.call_later(self.header_timeout_s, self._expire, connection)

    def _expire(self, connection: Connection) -> None:
        state = self._open.get(connection)
        if state is None or not connection.between_requests:
            return
        self.timed_out += 1
        self._forget(connection)
        if state.partial:
            connection.answer_and_close(self._timeout_response)
        else:
            connection.close()

    def _forget(self, connection: Connection) -> None:
        state = self._open.pop(connection, None)
        self._fresh.pop(connection, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def _idlest(self, newcomer: Connection) -> Connection | None:
        """The connection to close for room: the oldest that sent no request yet, else the
        oldest waiting between requests; never `newcomer`, nor one serving a request."""
        for connection in self._fresh:
            if connection is not newcomer:
                return connection
        for connection in self._open:
            if connection is not newcomer and connection.between_requests:
                return connection
        return None

    def _note(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_S:
            self._logged = now
            logger.warning(
                message + " (so far: %d closed idle, %d refused, %d timed out)",
                *args,
                self.evicted,
                self.refused,
                self.timed_out,
            )


class _Refusal:
    """The ASGI app that answers the requests of a connection past the cap."""

    def __init__(self, message: str) -> None:
        self._payload = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": SERVER_BUSY, "message": message},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send_json(
            send, 503, self._payload, ((b"connection", b"close"), (b"retry-after", b"1"))
        )
