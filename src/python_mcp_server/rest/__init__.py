"""The REST API: the tools over plain HTTP on the MCP server's own port, behind its guards
(bearer token, Host/Origin checks, body limits). Each call goes through FastMCP's own tool
dispatch, so REST and MCP share every tool, its validation and its result. See docs/rest.md."""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP
from starlette.routing import BaseRoute, Route

from python_mcp_server.rest.catalogue import OpenApi, Tools
from python_mcp_server.rest.execute import Execute, ExecuteStream
from python_mcp_server.rest.resources import Resources

__all__ = ["rest_routes"]


def rest_routes(
    mcp: FastMCP[Any], version: str, *, token: bool = False, keepalive_s: float = 15.0
) -> list[BaseRoute]:
    """The REST routes for `mcp` (`token`: the server requires a bearer token)."""
    return [
        Route("/tools", Tools(mcp).get, methods=["GET"]),
        Route("/openapi.json", OpenApi(mcp, version, token=token).get, methods=["GET"]),
        Route("/execute", Execute(mcp), methods=["POST"]),
        Route("/execute/stream", ExecuteStream(mcp, keepalive_s), methods=["POST"]),
        Route("/resource", Resources(mcp).get, methods=["GET"]),
    ]
