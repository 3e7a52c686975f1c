"""`BearerAuthMiddleware`: an ASGI guard that requires `Authorization: Bearer <token>`.

The server has one static token and no OAuth. Clients that try OAuth first on a 401 (Claude Code,
VS Code, the MCP Inspector without a configured header) look for OAuth metadata under
`/.well-known/`, then register at `/register`. Both answer 404 whatever the token, so such a
client learns at once that there is no authorization server; the registration answer is an OAuth
error whose description says how to send the header, which is what these clients show. A 401
names `error="invalid_token"` only when a credential came and was wrong (RFC 6750, section 3.1).

`/health` and the paths in `open_paths` (the playground's static files, which hold no data: a
browser cannot send a header when it loads a page, and the page then asks for the token) answer
without it.
"""

from __future__ import annotations

import hmac
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from python_mcp_server.middleware._responses import send_json

OPEN_PATHS: Final = frozenset({"/health"})
UNAUTHORIZED: Final = -32001
REALM: Final = b'Bearer realm="python-mcp-server"'
MESSAGE: Final = (
    "Unauthorized: this server needs its token. Send 'Authorization: Bearer <token>' with the "
    "server's token (from --auth-token-file or --auth-token); with the FastMCP Client, pass "
    "auth='<token>'."
)
NO_OAUTH: Final = (
    "This server does not use OAuth: configure the client to send the header "
    "'Authorization: Bearer <token>' with the server's token. Claude Code: claude mcp add "
    '--transport http <name> <url> --header "Authorization: Bearer <token>"; VS Code and '
    'Cursor: "headers": {"Authorization": "Bearer <token>"} in mcp.json.'
)


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self._token = token.encode()
        self._open = OPEN_PATHS | open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self._open:
            await self.app(scope, receive, send)
            return
        if path.startswith("/.well-known/") or path == "/register":
            await send_json(send, 404, {"error": "invalid_request", "error_description": NO_OAUTH})
            return
        header: bytes | None = None
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                header = value
                break
        scheme, _, given = (header or b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            await self.app(scope, receive, send)
            return
        challenge = REALM if header is None else REALM + b', error="invalid_token"'
        # a JSON-RPC error body, so MCP clients show the message instead of a bare status
        await send_json(
            send,
            401,
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": UNAUTHORIZED, "message": MESSAGE},
            },
            ((b"www-authenticate", challenge),),
        )
