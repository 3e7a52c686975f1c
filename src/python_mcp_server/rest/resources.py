"""`GET /resource?uri=...`: a resource's bytes with its mime type, for what a result links to
(`kernel://` images, plotly pages and long outputs; `workspace://` files). Read through FastMCP's
own resource dispatch, as `resources/read` is. `download=1` asks the browser to save it."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from fastmcp import FastMCP
from fastmcp.exceptions import NotFoundError, ResourceError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from python_mcp_server.rest.calls import RestError, check_site, rest_error

_SCHEMES = ("kernel://", "workspace://")


class Resources:
    """`GET /resource`."""

    def __init__(self, mcp: FastMCP[Any]) -> None:
        self.mcp = mcp

    async def get(self, request: Request) -> Response:
        try:
            return await self._read(request)
        except RestError as exc:
            return JSONResponse(exc.payload(), status_code=exc.status)

    async def _read(self, request: Request) -> Response:
        check_site(request.scope)
        uri = request.query_params.get("uri", "")
        if not uri.startswith(_SCHEMES):
            raise RestError(
                400,
                "invalid_request",
                "Pass the resource as ?uri=<kernel://... or workspace://... URI> (URL-encoded), "
                f"as a result gave it; got {repr(uri) if uri else 'no uri'}.",
            )
        try:
            result = await self.mcp.read_resource(uri)
        except NotFoundError as exc:
            raise RestError(404, "not_found", f"No resource {uri!r}: {exc}") from exc
        except ResourceError as exc:
            raise rest_error(exc) from exc
        content = result.contents[0]
        data = content.content
        raw = data.encode() if isinstance(data, str) else data
        mime = content.mime_type or "application/octet-stream"
        if isinstance(data, str) and "charset" not in mime:
            mime += "; charset=utf-8"
        headers = {"x-content-type-options": "nosniff"}
        if request.query_params.get("download") in ("1", "true"):
            name = unquote(uri.rstrip("/").rsplit("/", 1)[-1]) or "download"
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
            headers["content-disposition"] = f'attachment; filename="{safe}"'
        return Response(raw, media_type=mime, headers=headers)
