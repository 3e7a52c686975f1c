"""The quarantine for other projects' private APIs: each use of a FastMCP or MCP SDK name that is
not public lives in `fastmcp_private` or `mcp_private`, with the reason, and `tests/test_compat.py`
checks each one against the installed version. Nothing else in the package may use such a name
(`tests/test_architecture.py` fails if it does)."""
