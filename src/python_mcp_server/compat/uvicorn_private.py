"""uvicorn internals we use, each with what it replaces and why.

uvicorn holds a connection from the moment it is accepted until the client closes it: a client
that connects and sends nothing, or sends its headers a byte at a time, keeps a socket (and a
file descriptor) forever, and its `limit_concurrency` counts such sockets and then refuses every
newcomer. `transports/connections.py` bounds the wait for headers and caps the connections, and
needs to see each connection's life to do it: when it opens, when a request's headers are
complete, when bytes arrive between requests, when it closes. uvicorn's public `http=` setting
takes a protocol class; ours extends its httptools protocol (`HttpToolsProtocol`, not documented)
and reads its per-request state (`cycle`, `cycle.response_complete`) and the application it
dispatches to (`app`). `tests/test_compat.py` checks each name below.

uvicorn also writes a response's status line and headers, then its body, as two writes: two
`send` system calls and two packets for every answer. The protocol here hands uvicorn a transport
that joins the writes made in one turn of the event loop (a whole small response) into one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

# writes held for joining stay below this; a bigger one goes out at once, after what is held
_JOIN_LIMIT = 64 * 1024

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class Connection(Protocol):
    """One client connection, as `ConnectionWatcher` sees it."""

    @property
    def between_requests(self) -> bool:
        """No request is being read or answered: the connection waits for the next headers."""
        ...

    def close(self) -> None: ...

    def refuse_requests(self, app: Any) -> None:
        """Send every request of this connection to `app` (an ASGI app) instead of the server's."""
        ...

    def answer_and_close(self, response: bytes) -> None:
        """Write a complete raw HTTP response and close."""
        ...


class ConnectionWatcher(Protocol):
    def opened(self, connection: Connection) -> None: ...

    def request_started(self, connection: Connection) -> None:
        """A request's headers are complete; the server now reads its body and answers it."""
        ...

    def bytes_between_requests(self, connection: Connection) -> None:
        """Bytes of a request whose headers are not complete yet arrived."""
        ...

    def closed(self, connection: Connection) -> None: ...


def watched_protocol(watcher: ConnectionWatcher) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol class, reporting each connection's life to `watcher`.

    Replaces `uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` as uvicorn's `http=`
    class (the one uvicorn picks itself when httptools is installed, as it is with this package).
    """

    class WatchedHttpProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(JoinedWrites(transport))  # type: ignore[arg-type]
            watcher.opened(self)

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self.cycle is not before:
                watcher.request_started(self)
            elif self.between_requests:
                watcher.bytes_between_requests(self)

        def connection_lost(self, exc: Exception | None) -> None:
            watcher.closed(self)
            super().connection_lost(exc)

        @property
        def between_requests(self) -> bool:
            cycle: RequestResponseCycle | None = self.cycle  # None until the first request
            return cycle is None or cycle.response_complete

        def close(self) -> None:
            if not self.transport.is_closing():
                self.transport.close()

        def refuse_requests(self, app: Any) -> None:
            self.app = app

        def answer_and_close(self, response: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

    return WatchedHttpProtocol


class JoinedWrites:
    """A transport whose writes in one turn of the event loop go out as one write (in order).

    The first write of a turn is held and a flush is scheduled for the end of the turn; further
    writes join it; `close`, `write_eof` and a write above `_JOIN_LIMIT` flush first. Everything
    else is the wrapped transport's.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._held_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if len(data) + self._held_size > _JOIN_LIMIT:
            self._flush()
            self._transport.write(data)
            return
        if not self._held:
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.append(bytes(data))
        self._held_size += len(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held = []
        self._held_size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._held_size + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
