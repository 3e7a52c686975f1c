"""The ways requests reach the server that we serve ourselves: stdio (one JSON-RPC message per
line) and plain-JSON answers on the streamable-HTTP endpoint for calls that cannot stream; the
requests in flight, which a stop waits for; and the bounds on HTTP connections and on
handshake-era MCP sessions."""

from python_mcp_server.transports.connections import (
    ConnectionGuard,
    connection_limits,
    raise_open_files_limit,
)
from python_mcp_server.transports.handshake_sessions import HandshakeSessions
from python_mcp_server.transports.in_flight import CountRequests, InFlight
from python_mcp_server.transports.plain_json import PlainJsonCalls
from python_mcp_server.transports.stdio import (
    Inbound,
    LineReader,
    claimed_stdio,
    read_messages,
    write_messages,
)

__all__ = [
    "ConnectionGuard",
    "CountRequests",
    "HandshakeSessions",
    "InFlight",
    "Inbound",
    "LineReader",
    "PlainJsonCalls",
    "claimed_stdio",
    "connection_limits",
    "raise_open_files_limit",
    "read_messages",
    "write_messages",
]
