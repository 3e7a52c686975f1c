"""Tools: placeholder module filled in by its issue's work (registered by server.py)."""

from __future__ import annotations

from fastmcp import FastMCP


def register(mcp: FastMCP) -> None:
    """Register this module's tools and resources."""
