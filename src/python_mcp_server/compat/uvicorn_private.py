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
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

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
            super().connection_made(transport)
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
