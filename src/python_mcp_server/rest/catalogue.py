"""`GET /tools` (every tool with its description, input and output schema) and
`GET /openapi.json` (an OpenAPI 3.1 document generated from the same schemas)."""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from python_mcp_server.rest.openapi import openapi_document


async def tool_list(mcp: FastMCP[Any]) -> list[dict[str, Any]]:
    """The tools as MCP clients list them, in the REST API's words."""
    listed = []
    for tool in await mcp.list_tools():
        wire = tool.to_mcp_tool()
        annotations = (
            wire.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
            if wire.annotations is not None
            else {}
        )
        listed.append(
            {
                "name": wire.name,
                "title": wire.title or wire.name,
                "description": wire.description or "",
                "input_schema": wire.input_schema,
                "output_schema": wire.output_schema,
                "annotations": annotations,
            }
        )
    return sorted(listed, key=lambda tool: str(tool["name"]))


class Tools:
    """`GET /tools`."""

    def __init__(self, mcp: FastMCP[Any]) -> None:
        self.mcp = mcp

    async def get(self, request: Request) -> Response:
        return JSONResponse({"tools": await tool_list(self.mcp)})


class OpenApi:
    """`GET /openapi.json`."""

    def __init__(self, mcp: FastMCP[Any], version: str, *, token: bool = False) -> None:
        self.mcp = mcp
        self.version = version
        self.token = token

    async def get(self, request: Request) -> Response:
        tools = await tool_list(self.mcp)
        return JSONResponse(openapi_document(tools, self.version, token=self.token))
