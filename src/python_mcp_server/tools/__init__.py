"""Thin MCP adapters: module-level functions marked with FastMCP's `@tool` and `@resource`. Each
module lists its own in `TOOLS` (and `RESOURCES`); `server.py` adds them all, each tool wrapped in
`domain_errors` and its listing made lean by `listed`."""

from typing import Final

from python_mcp_server.tools import (
    artifacts,
    execution,
    files,
    health,
    introspection,
    notebooks,
    packages,
    sessions,
)
from python_mcp_server.tools._common import ToolFunction, domain_errors
from python_mcp_server.tools._schemas import listed

TOOLS: Final[tuple[ToolFunction, ...]] = (
    *execution.TOOLS,
    *introspection.TOOLS,
    *sessions.TOOLS,
    *notebooks.TOOLS,
    *files.TOOLS,
    *packages.TOOLS,
    *health.TOOLS,
)
RESOURCES: Final[tuple[ToolFunction, ...]] = (*files.RESOURCES, *artifacts.RESOURCES)

__all__ = ["RESOURCES", "TOOLS", "domain_errors", "listed"]
