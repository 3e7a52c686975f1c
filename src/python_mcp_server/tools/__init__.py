"""Thin MCP adapters. Each module has `register(mcp)`; `server.py` calls them all."""

from python_mcp_server.tools import execution, health, sessions

MODULES = (execution, sessions, health)

__all__ = ["MODULES"]
