"""python-mcp-server: an MCP server that runs Python in real Jupyter kernels."""

from importlib.metadata import PackageNotFoundError, version

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import ServerError

try:
    __version__ = version("python-mcp-server")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["ServerConfig", "ServerError", "__version__"]
