"""Health tools: ping (kernel health tools join it under the health issue)."""

from __future__ import annotations

import time

from fastmcp import Context, FastMCP
from fastmcp.tools import ToolResult
from pydantic import BaseModel

from python_mcp_server import __version__
from python_mcp_server.runtime import services
from python_mcp_server.tools._common import READ_ONLY, domain_errors, result, schema


class PingResult(BaseModel):
    ok: bool
    server_version: str
    sessions: int
    server_time: float


def register(mcp: FastMCP) -> None:
    @mcp.tool(annotations=READ_ONLY, output_schema=schema(PingResult))
    @domain_errors
    async def ping(ctx: Context) -> ToolResult:
        """Check that the server is up; answers at once even while code runs.

        Returns the server version and the number of live sessions.
        """
        svc = services(ctx)
        return result(
            PingResult(
                ok=True,
                server_version=__version__,
                sessions=len(svc.sessions.ids()),
                server_time=time.time(),
            )
        )
