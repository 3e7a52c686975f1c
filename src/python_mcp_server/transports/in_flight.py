"""The requests being answered, so a stop can wait for their answers and for what follows them.

A client often sends another request right after an answer: the MCP SDK's client (and so the
FastMCP Client) lists the tools to check a result against its output schema when it has not
listed them yet, and a 2025-11-25 client ends its session with a DELETE. A server that stops the
moment the last answer went out refuses those, and the client reports the connection error
instead of the answer it got. `InFlight.quiet` waits until nothing is in flight and nothing was
answered for a moment.
"""

from __future__ import annotations

import itertools
import math

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send


class InFlight:
    """The requests read but not yet answered (stdio: by JSON-RPC id; HTTP: by request)."""

    def __init__(self) -> None:
        self._ids: set[str | int] = set()
        self._empty = anyio.Event()
        self._empty.set()
        self._last_done = -math.inf

    def add(self, request_id: str | int) -> None:
        self._ids.add(request_id)
        if self._empty.is_set():
            self._empty = anyio.Event()

    def done(self, request_id: str | int | None) -> None:
        if request_id is None:
            return
        self._ids.discard(request_id)
        self._last_done = anyio.current_time()
        if not self._ids:
            self._empty.set()

    async def drained(self) -> None:
        await self._empty.wait()

    async def quiet(self, quiet_s: float) -> None:
        """Wait until nothing is in flight and nothing was answered for `quiet_s` seconds."""
        while True:
            await self._empty.wait()
            left = self._last_done + quiet_s - anyio.current_time()
            if left <= 0 and self._empty.is_set():
                return
            await anyio.sleep(max(left, 0))


class CountRequests:
    """ASGI middleware that keeps every HTTP request in `in_flight` until it is answered, except
    GET: a GET is an event stream that stays open for as long as the client keeps it."""

    def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
        self.app = app
        self._in_flight = in_flight
        self._keys = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET":
            await self.app(scope, receive, send)
            return
        key = next(self._keys)
        self._in_flight.add(key)
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight.done(key)
