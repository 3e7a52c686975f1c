"""The web playground: one static page at `/` that drives the server through its REST API.

The files in `static/` are the whole page (HTML, CSS, the app and a prebuilt CodeMirror bundle);
nothing is fetched from anywhere else. The page holds no data: every call it makes goes through
the REST routes, behind the same token and guards as MCP.
"""

from python_mcp_server.playground.routes import PAGE_PATH, asset_paths, serve_asset

__all__ = ["PAGE_PATH", "asset_paths", "serve_asset"]
