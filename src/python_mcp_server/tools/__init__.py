"""Thin MCP adapters. Each module has `register(mcp)`; `server.py` calls them all."""

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

MODULES = (execution, introspection, sessions, notebooks, files, packages, health, artifacts)

__all__ = ["MODULES"]
