"""`BearerAuthMiddleware`: an ASGI guard that requires `Authorization: Bearer <token>`."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from python_mcp_server.middleware._responses import send_json

OPEN_PATHS = frozenset({"/health"})
UNAUTHORIZED = -32001
MESSAGE = (
    "Unauthorized: this server needs its token. Send 'Authorization: Bearer <token>' with the "
    "server's token (from --auth-token-file or --auth-token); with the FastMCP Client, pass "
    "auth='<token>'."
)


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = b""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                header = value
                break
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            await self.app(scope, receive, send)
            return
        # a JSON-RPC error body, so MCP clients show the message instead of a bare status
        await send_json(
            send,
            401,
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": UNAUTHORIZED, "message": MESSAGE},
            },
            (
                (
                    b"www-authenticate",
                    b'Bearer realm="python-mcp-server", error="invalid_token"',
                ),
            ),
        )
