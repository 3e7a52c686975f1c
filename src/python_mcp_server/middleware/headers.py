"""`HeaderWhitespaceMiddleware`: header values reach the app without surrounding whitespace.

RFC 9110 (section 5.5) leaves leading and trailing whitespace out of a field value, and a client
may send some (`Mcp-Name: run_python_code `). uvicorn's httptools parser keeps a trailing space,
and the MCP SDK compares `Mcp-Name`, `Mcp-Method` and `MCP-Protocol-Version` with the request body
exactly, so such a request was refused with "header does not match". This guard strips every
value once, before anything reads it; a request without such whitespace passes untouched.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

_WHITESPACE: Final = b" \t"


class HeaderWhitespaceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            if any(_padded(value) for _, value in headers):
                scope = dict(scope)
                scope["headers"] = [(key, value.strip(_WHITESPACE)) for key, value in headers]
        await self.app(scope, receive, send)


def _padded(value: bytes) -> bool:
    return bool(value) and (value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"))
