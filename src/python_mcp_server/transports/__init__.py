"""The ways requests reach the server that we serve ourselves: stdio (one JSON-RPC message per
line) and plain-JSON answers on the streamable-HTTP endpoint for calls that cannot stream; the
requests in flight, which a stop waits for."""

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
    "CountRequests",
    "InFlight",
    "Inbound",
    "LineReader",
    "PlainJsonCalls",
    "claimed_stdio",
    "read_messages",
    "write_messages",
]
