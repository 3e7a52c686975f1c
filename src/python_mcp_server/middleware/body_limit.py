"""`BodyLimitMiddleware`: a request body that is too large, or too slow, gets a JSON-RPC error
that says what to do.

The MCP SDK refuses request bodies over 4 MiB with a bare `413 Request body too large`, which
clients show as an unexplained failure. This guard answers first, with the same status and a
message the model can act on.

It also bounds how long a body may take: a client that sends its body a byte a second would
otherwise hold its connection, and a slot under the connection cap, for as long as it likes. The
whole body must arrive within `timeout_s` of the request's headers, or the request gets a 408 and
its connection is closed. The body is read whole before the application sees it (the SDK reads
every body whole anyway).
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.compat.mcp_private import MAX_REQUEST_BODY_BYTES
from python_mcp_server.middleware._responses import send_json

MAX_BODY_BYTES = MAX_REQUEST_BODY_BYTES
DRAIN_LIMIT_BYTES = (
    64 * 1024 * 1024
)  # past this an oversized body is not read; the connection closes
INVALID_REQUEST = -32600
DEFAULT_BODY_TIMEOUT_S = 30.0


def too_large_message(size: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (
        f"The request is {more}{size} bytes, over the HTTP limit of {MAX_BODY_BYTES} bytes per "
        "request. "
        "Send a large file in pieces: write_file with append=true for each piece of at most about "
        "2 MB (base64 grows data by a third), or create the data with code in run_python_code."
    )


def too_slow_message(timeout_s: float, received: int, declared: int | None) -> str:
    of = f" of {declared}" if declared is not None else ""
    return (
        f"The request body did not arrive within {timeout_s:g} s ({received}{of} bytes came), so "
        "the server stopped waiting and closed the connection. Send each request at once; send a "
        "large file in pieces (write_file with append=true)."
    )


class BodyLimitMiddleware:
    """Read each request body whole, within `timeout_s`, before the application sees it.

    A body over `MAX_BODY_BYTES` is read (and dropped) before it is refused: a server that
    answers and closes while the client is still sending makes asynchronous clients fail with a
    connection error instead of showing the message. Bodies without a declared length are
    counted as they arrive. A request without a body passes straight through.
    """

    def __init__(self, app: ASGIApp, timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        size = declared_size(scope)
        body = _Body(receive)
        with anyio.move_on_after(self.timeout_s):
            await body.read(size)
        if body.gone:
            return
        if body.too_large:
            keep_alive = body.complete and not body.over_drain_limit
            if size is not None and size > MAX_BODY_BYTES:
                await _refuse(send, 413, too_large_message(size), keep_alive=keep_alive)
            else:
                message = too_large_message(body.crossed_at, at_least=body.more_after)
                await _refuse(send, 413, message, keep_alive=keep_alive)
            return
        if not body.complete:
            message = too_slow_message(self.timeout_s, body.received, size)
            await _refuse(send, 408, message, keep_alive=False)
            return
        await self.app(scope, replay(b"".join(body.chunks), receive), send)


class _Body:
    """One request body as it is read: kept up to the limit, counted and dropped past it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.chunks: list[bytes] = []
        self.received = 0
        self.complete = False
        self.gone = False  # the client disconnected
        self.too_large = False
        self.crossed_at = 0  # bytes read when the limit was passed, and whether more followed
        self.more_after = False
        self.over_drain_limit = False

    async def read(self, declared: int | None) -> None:
        self.too_large = declared is not None and declared > MAX_BODY_BYTES
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone = not self.too_large
                return
            chunk = message.get("body", b"")
            more = bool(message.get("more_body", False))
            self.received += len(chunk)
            if not self.too_large and self.received > MAX_BODY_BYTES:
                self.too_large = True
                self.crossed_at, self.more_after = self.received, more
                self.chunks.clear()
            elif not self.too_large:
                self.chunks.append(chunk)
            if not more:
                self.complete = True
                return
            if self.received > DRAIN_LIMIT_BYTES:
                self.over_drain_limit = True
                return


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that first hands out `body` (already read) whole, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def declared_size(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def has_body(scope: Scope) -> bool:
    """Whether the request carries a body: a Content-Length other than 0, or a Transfer-Encoding."""
    for key, value in scope.get("headers", []):
        if key == b"transfer-encoding":
            return True
        if key == b"content-length" and value.strip() != b"0":
            return True
    return False


async def _refuse(send: Send, status: int, message: str, *, keep_alive: bool) -> None:
    error = {"code": INVALID_REQUEST, "message": message}
    headers = () if keep_alive else ((b"connection", b"close"),)
    await send_json(send, status, {"jsonrpc": "2.0", "id": None, "error": error}, headers)
