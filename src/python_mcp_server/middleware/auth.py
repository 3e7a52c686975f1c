"""`BearerAuthMiddleware`: an ASGI guard that requires `Authorization: Bearer <token>`."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from python_mcp_server.middleware._responses import send_json

OPEN_PATHS = frozenset({"/health"})


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
        await send_json(
            send,
            401,
            {
                "error": "unauthorized",
                "error_description": "Send the server's token as 'Authorization: Bearer <token>' "
                "(the value of --auth-token / PYTHON_MCP_SERVER_AUTH_TOKEN).",
            },
            ((b"www-authenticate", b'Bearer realm="python-mcp-server"'),),
        )
