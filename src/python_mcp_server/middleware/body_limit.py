"""`BodyLimitMiddleware`: an oversized HTTP request gets a JSON-RPC error that says what to do.

The MCP SDK refuses request bodies over 4 MiB with a bare `413 Request body too large`, which
clients show as an unexplained failure. This guard answers first, with the same status and a
message the model can act on.
"""

from __future__ import annotations

from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.types import ASGIApp, Receive, Scope, Send

from python_mcp_server.middleware._responses import send_json

MAX_BODY_BYTES = DEFAULT_MAX_REQUEST_BODY_SIZE
INVALID_REQUEST = -32600


def too_large_message(size: int) -> str:
    return (
        f"The request is {size} bytes, over the HTTP limit of {MAX_BODY_BYTES} bytes per request. "
        "Send a large file in pieces: write_file with append=true for each piece of at most about "
        "2 MB (base64 grows data by a third), or create the data with code in run_python_code."
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            size = _declared_size(scope)
            if size is not None and size > MAX_BODY_BYTES:
                await _refuse(send, size)
                return
        await self.app(scope, receive, send)


def _declared_size(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, size: int) -> None:
    error = {"code": INVALID_REQUEST, "message": too_large_message(size)}
    await send_json(
        send, 413, {"jsonrpc": "2.0", "id": None, "error": error}, ((b"connection", b"close"),)
    )
