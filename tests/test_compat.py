"""A contract test per private FastMCP or MCP SDK name we use; every such use lives in `compat/`.

Each test reads the name from the installed library itself, so when an upgrade removes or changes
one, the failure names the symbol, the installed version and what would break: fix the wrapper in
`compat/` before taking the upgrade."""

from __future__ import annotations

import importlib
import inspect
from contextlib import AbstractAsyncContextManager
from importlib.metadata import version
from typing import Any

import pytest
from fastmcp import FastMCP
from pydantic import BaseModel
from starlette.requests import Request

INSTALLED = {"fastmcp": f"fastmcp {version('fastmcp')}", "mcp": f"mcp {version('mcp')}"}


def _lookup(dotted: str, effect: str) -> Any:
    """The module-level object `dotted` names; fails with the symbol, version and effect."""
    module_name, name = dotted.rsplit(".", 1)
    installed = INSTALLED[dotted.split(".")[0]]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.fail(f"{installed} has no module {module_name} (for `{dotted}`): {effect}.")
    if not hasattr(module, name):
        pytest.fail(f"{installed} removed the private `{dotted}`: {effect}. Update compat/.")
    return getattr(module, name)


def _expect_params(dotted: str, fn: Any, expected: tuple[str, ...], effect: str) -> None:
    got = tuple(inspect.signature(fn).parameters)[: len(expected)]
    installed = INSTALLED[dotted.split(".")[0]]
    assert got == expected, (
        f"{installed} changed the signature of the private `{dotted}` (parameters {got}, we call "
        f"it with {expected}): {effect}. Update compat/."
    )


STDIO = "the stdio server cannot run FastMCP on our transport (compat/fastmcp_private.py)"
PLAIN_JSON = (
    "stateless-era HTTP calls lose the plain-JSON path and take the SDK's slower streaming "
    "path (compat/mcp_private.py, middleware/plain_json.py)"
)


def test_fastmcp_lifespan_manager_opens_the_server_lifespan() -> None:
    symbol = "fastmcp.server.server.FastMCP._lifespan_manager"
    cls = _lookup("fastmcp.server.server.FastMCP", STDIO)
    assert hasattr(cls, "_lifespan_manager"), f"{INSTALLED['fastmcp']} removed `{symbol}`: {STDIO}."
    _expect_params(symbol, cls._lifespan_manager, ("self",), STDIO)
    opened = FastMCP("contract")._lifespan_manager()
    assert isinstance(opened, AbstractAsyncContextManager), f"`{symbol}()`: {STDIO}."


def test_fastmcp_mcp_server_is_a_low_level_server_that_runs_on_given_streams() -> None:
    symbol = "fastmcp.server.server.FastMCP._mcp_server"
    low_level = _lookup("fastmcp.server.low_level.LowLevelServer", STDIO)
    low = getattr(FastMCP("contract"), "_mcp_server", None)
    assert isinstance(low, low_level), f"{INSTALLED['fastmcp']} changed `{symbol}`: {STDIO}."
    _expect_params(
        f"{symbol}.run", low.run, ("read_stream", "write_stream", "initialization_options"), STDIO
    )
    _expect_params(
        f"{symbol}.create_initialization_options", low.create_initialization_options, (), STDIO
    )


def test_fastmcp_set_and_reset_transport_set_what_context_reports() -> None:
    effect = "`ctx.transport` is not 'stdio' on our stdio transport, so stdio callers lose switch_session"
    set_transport = _lookup("fastmcp.server.context.set_transport", effect)
    reset_transport = _lookup("fastmcp.server.context.reset_transport", effect)
    _expect_params("fastmcp.server.context.set_transport", set_transport, ("transport",), effect)
    _expect_params("fastmcp.server.context.reset_transport", reset_transport, ("token",), effect)
    context = _lookup("fastmcp.server.context.Context", effect)(FastMCP("contract"))
    token = set_transport("stdio")
    try:
        assert context.transport == "stdio", effect
    finally:
        reset_transport(token)
    assert context.transport is None, effect


class _Inner(BaseModel):
    x: int


class _Outer(BaseModel):
    inner: _Inner


def test_fastmcp_dereference_refs_inlines_defs() -> None:
    effect = "tool schemas keep their $refs and tools/list gets slower (compat.inline_refs)"
    dereference_refs = _lookup("fastmcp.utilities.json_schema.dereference_refs", effect)
    _expect_params(
        "fastmcp.utilities.json_schema.dereference_refs", dereference_refs, ("schema",), effect
    )
    inlined = dereference_refs(_Outer.model_json_schema())
    assert "$defs" not in inlined, effect
    assert inlined["properties"]["inner"]["properties"]["x"]["type"] == "integer", effect


def test_sdk_handle_modern_request_takes_the_arguments_plain_json_passes() -> None:
    symbol = "mcp.server._streamable_http_modern.handle_modern_request"
    handler = _lookup(symbol, PLAIN_JSON)
    expected = (
        "app",
        "security_settings",
        "json_response",
        "lifespan_state",
        "scope",
        "receive",
        "send",
    )
    _expect_params(symbol, handler, expected, PLAIN_JSON)
    assert len(inspect.signature(handler).parameters) == len(expected), PLAIN_JSON


def test_sdk_session_manager_keeps_its_lifespan_state_and_task_group() -> None:
    cls = _lookup("mcp.server.streamable_http_manager.StreamableHTTPSessionManager", PLAIN_JSON)
    manager = cls(app=FastMCP("contract")._mcp_server)
    for attribute in ("_task_group", "_lifespan_state"):
        assert hasattr(manager, attribute), (
            f"{INSTALLED['mcp']} removed the private `StreamableHTTPSessionManager.{attribute}`: "
            f"{PLAIN_JSON}. Update compat/."
        )


def test_sdk_check_accept_headers_reads_the_accept_header() -> None:
    symbol = "mcp.server.streamable_http.check_accept_headers"
    effect = "the plain-JSON path cannot judge Accept headers as the SDK does"
    check = _lookup(symbol, effect)
    _expect_params(symbol, check, ("request",), effect)
    headers = [(b"accept", b"application/json, text/event-stream")]
    request = Request({"type": "http", "method": "POST", "headers": headers})
    assert check(request) == (True, True), f"`{symbol}` now answers {check(request)}: {effect}."


def test_sdk_default_max_request_body_size_is_a_byte_count() -> None:
    symbol = "mcp.server.transport_security.DEFAULT_MAX_REQUEST_BODY_SIZE"
    effect = "BodyLimitMiddleware no longer knows the SDK's HTTP body limit"
    limit = _lookup(symbol, effect)
    assert isinstance(limit, int), f"`{symbol}` is {limit!r}: {effect}."
    assert limit > 0, f"`{symbol}` is {limit!r}: {effect}."
