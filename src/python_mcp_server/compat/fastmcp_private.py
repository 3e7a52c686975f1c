"""FastMCP internals we use, each with what it replaces and why.

FastMCP's only public stdio runner, `FastMCP.run_stdio_async`, always serves through the SDK's
`stdio_server`, which a desktop client can stop answering (see `middleware/stdio_transport.py`).
To run FastMCP's server on our own transport we do what `run_stdio_async` does
(`fastmcp/server/mixins/transport.py`) with our streams: mark the transport as stdio, enter the
server's lifespan, and run its low-level server. `tests/test_compat.py` checks each name below.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import Any

import fastmcp
import fastmcp.server.low_level as fastmcp_low_level
import fastmcp.server.server as fastmcp_server
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from fastmcp.server.low_level import LowLevelServer
from fastmcp.utilities.json_schema import dereference_refs
from opentelemetry.trace import INVALID_SPAN


def runs_on_our_stdio(mcp: FastMCP[Any]) -> bool:
    """Whether `mcp` has the internals `lifespan` and `low_level_server` reach for; without them
    the server falls back to FastMCP's own stdio runner."""
    return hasattr(mcp, "_lifespan_manager") and hasattr(mcp, "_mcp_server")


def lifespan(mcp: FastMCP[Any]) -> AbstractAsyncContextManager[None]:
    """The server's lifespan, entered as `run_stdio_async` enters it.

    Replaces `FastMCP._lifespan_manager()`: FastMCP enters it only inside its own runners and
    `http_app`'s lifespan; no public call opens it around other streams.
    """
    return mcp._lifespan_manager()


def low_level_server(mcp: FastMCP[Any]) -> LowLevelServer[Any]:
    """The SDK server FastMCP builds; its public `run(read, write, options)` serves any streams.

    Replaces `FastMCP._mcp_server`: FastMCP exposes no public handle on it.
    """
    return mcp._mcp_server


@contextmanager
def stdio_transport() -> Iterator[None]:
    """While inside, `Context.transport` reads "stdio", as under `run_stdio_async`.

    Replaces `fastmcp.server.context.set_transport` / `reset_transport`: helpers FastMCP's runners
    call that are not in its documented API. `runtime.caller_key` needs the transport to know a
    stdio client is one caller.
    """
    token = set_transport("stdio")
    try:
        yield
    finally:
        reset_transport(token)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$ref`s replaced by their `$defs`, as FastMCP sends schemas to clients.

    Replaces `fastmcp.utilities.json_schema.dereference_refs`, an internal FastMCP applies on
    every tools/list; inlining once when a tool is defined makes tools/list about 2x faster and
    sends the same schema.
    """
    return dereference_refs(schema)


_NO_SPAN = nullcontext(INVALID_SPAN)


def spans_skipped_when_off() -> None:
    """With `fastmcp.settings.telemetry_mode` "off", FastMCP's per-request span helpers cost no
    more than a check: about 0.1 ms of CPU per tool call less.

    Replaces the names `server_span` in `fastmcp.server.server` and `seam_span` in
    `fastmcp.server.low_level`, which those modules call on every request. In "off" mode they
    still build each span's attributes (protocol, auth, session) before handing them to a tracer
    that drops them; the replacements return a no-op context with the invalid span, which is what
    that tracer yields. Any other mode goes to FastMCP's own helper. Idempotent.
    """
    for module, name in ((fastmcp_server, "server_span"), (fastmcp_low_level, "seam_span")):
        current = getattr(module, name)
        if getattr(current, "_skips_when_off", False):
            continue
        setattr(module, name, _skipping_when_off(current))


def _skipping_when_off(span_helper: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(span_helper)
    def helper(*args: Any, **kwargs: Any) -> Any:
        if fastmcp.settings.telemetry_mode == "off":
            return _NO_SPAN
        return span_helper(*args, **kwargs)

    helper._skips_when_off = True  # type: ignore[attr-defined]
    return helper
