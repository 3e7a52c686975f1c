"""Services: the use cases, free of MCP types."""

from python_mcp_server.services.app import Services

__all__ = ["Services"]
