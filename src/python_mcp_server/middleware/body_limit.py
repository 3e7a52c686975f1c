"""`BodyLimitMiddleware`: an oversized HTTP request gets a JSON-RPC error that says what to do.

The MCP SDK refuses request bodies over 4 MiB with a bare `413 Request body too large`, which
clients show as an unexplained failure. This guard answers first, with the same status and a
message the model can act on.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.compat.mcp_private import MAX_REQUEST_BODY_BYTES
from python_mcp_server.middleware._responses import send_json

MAX_BODY_BYTES = MAX_REQUEST_BODY_BYTES
DRAIN_LIMIT_BYTES = (
    64 * 1024 * 1024
)  # past this an oversized body is not read; the connection closes
INVALID_REQUEST = -32600


def too_large_message(size: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (
        f"The request is {more}{size} bytes, over the HTTP limit of {MAX_BODY_BYTES} bytes per "
        "request. "
        "Send a large file in pieces: write_file with append=true for each piece of at most about "
        "2 MB (base64 grows data by a third), or create the data with code in run_python_code."
    )


class BodyLimitMiddleware:
    """Refuse POST bodies over `MAX_BODY_BYTES` with a JSON-RPC error, after reading them.

    The body is read (and dropped) before answering: a server that answers and closes while the
    client is still sending makes asynchronous clients fail with a connection error instead of
    showing the message. Bodies without a declared length are counted as they arrive.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        size = declared_size(scope)
        if size is not None:
            if size <= MAX_BODY_BYTES:
                await self.app(scope, receive, send)
                return
            drained = await _drain(receive, 0)
            await _refuse(send, size, keep_alive=drained)
            return
        # no Content-Length (chunked): take the body up to the limit, then hand it on
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            more = bool(message.get("more_body"))
            if total > MAX_BODY_BYTES:
                drained = await _drain(receive, total) if more else True
                await _refuse(send, total, keep_alive=drained, at_least=more)
                return
            chunks.append(body)
            if not more:
                break
        await self.app(scope, replay(b"".join(chunks), receive), send)


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


async def _drain(receive: Receive, seen: int) -> bool:
    """Read and drop the rest of the body; False when it is too big to read (close instead)."""
    while seen <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        seen += len(message.get("body", b""))
        if not message.get("more_body"):
            return True
    return False


def declared_size(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, size: int, *, keep_alive: bool, at_least: bool = False) -> None:
    error = {"code": INVALID_REQUEST, "message": too_large_message(size, at_least=at_least)}
    headers = () if keep_alive else ((b"connection", b"close"),)
    await send_json(send, 413, {"jsonrpc": "2.0", "id": None, "error": error}, headers)
