"""The FastMCP lifespan that owns `Services`, and the one typed accessor tools use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, cast

from fastmcp import Context, FastMCP

from python_mcp_server.config import ServerConfig
from python_mcp_server.services import Services

__all__ = [
    "LiveOutput",
    "Services",
    "caller_key",
    "lifespan_for",
    "live_output",
    "services",
    "streaming_to",
]

_KEY = "services"


class LiveOutput(Protocol):
    """Where a call made outside MCP (the REST API's event stream) wants what a tool produces
    while it runs: a cell's output as it is printed, and progress messages (an install)."""

    def started(self) -> None:
        """The tool accepted its arguments and runs."""

    def output(self, stream: str, text: str, /) -> None: ...

    async def progress(self, message: str, /) -> None: ...


_LIVE: ContextVar[LiveOutput | None] = ContextVar("python_mcp_server_live_output", default=None)


@contextmanager
def streaming_to(listener: LiveOutput) -> Iterator[None]:
    """Tool calls made in this context (this task, and the ones it starts) send their live
    output to `listener`."""
    token = _LIVE.set(listener)
    try:
        yield
    finally:
        _LIVE.reset(token)


def live_output() -> LiveOutput | None:
    """The listener of the current call, when a REST event stream made it."""
    return _LIVE.get()


def lifespan_for(config: ServerConfig, opened: Services | None = None) -> Any:
    """Open the services for the server's lifetime, or use `opened` (its opener closes it)."""

    @asynccontextmanager
    async def lifespan(server: FastMCP[Any]) -> AsyncIterator[dict[str, Any]]:
        if opened is not None:
            yield {_KEY: opened}
            return
        async with Services.open(config) as services:
            yield {_KEY: services}

    return lifespan


def services(ctx: Context) -> Services:
    """The running server's services."""
    return cast(Services, ctx.lifespan_context[_KEY])


def caller_key(ctx: Context) -> str | None:
    """A stable identity for the calling client, or None on stateless connections.

    Legacy (handshake) connections keep one MCP session id; stdio has one client per process.
    On 2026-07-28 connections every request is its own connection, so there is no caller to
    remember a choice for.
    """
    if ctx.transport == "stdio":
        return "stdio"
    rc = ctx.request_context
    if rc is None:
        return None
    if str(rc.protocol_version) >= "2026-07-28":
        return None
    try:
        return f"mcp:{ctx.session_id}"
    except RuntimeError:
        return None
