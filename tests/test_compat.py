"""A contract test per private FastMCP or MCP SDK name we use; every such use lives in `compat/`.

Each test reads the name from the installed library itself, so when an upgrade removes or changes
one, the failure names the symbol, the installed version and what would break: fix the wrapper in
`compat/` before taking the upgrade."""

from __future__ import annotations

import importlib
import inspect
import json
from contextlib import AbstractAsyncContextManager
from importlib.metadata import version
from typing import Any

import anyio
import anyio.abc
import pytest
import uvicorn
from fastmcp import Client, Context, FastMCP
from fastmcp.server.server import StateValue
from pydantic import BaseModel, Field
from starlette.requests import Request

from python_mcp_server import services, tools
from python_mcp_server.compat.fastmcp_private import (
    SessionState,
    inline_refs,
    keep_session_state_in_memory,
)
from python_mcp_server.compat.uvicorn_private import watched_protocol
from tests.servers import free_port

INSTALLED = {
    "fastmcp": f"fastmcp {version('fastmcp')}",
    "mcp": f"mcp {version('mcp')}",
    "uvicorn": f"uvicorn {version('uvicorn')}",
}


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


STATE = (
    "the first tools/call imports FastMCP's key_value store again (about 0.15 s of cold start), "
    "or session state stops working (compat.keep_session_state_in_memory)"
)


def test_fastmcp_state_store_is_built_lazily_and_ours_serves_session_state() -> None:
    symbol = "fastmcp.server.server.FastMCP._FastMCP__state_store"
    mcp = FastMCP("contract")
    assert getattr(mcp, "_state_storage", "missing") is None, f"`_state_storage`: {STATE}."
    assert getattr(mcp, "_FastMCP__state_store", "missing") is None, f"`{symbol}`: {STATE}."
    keep_session_state_in_memory(mcp)
    store: object = mcp._state_store
    assert isinstance(store, SessionState), f"`FastMCP._state_store`: {STATE}."

    @mcp.tool
    async def remember(ctx: Context) -> dict[str, Any]:
        await ctx.set_state("k", {"a": [1]})
        first = await ctx.get_state("k")
        first["a"].append(2)  # a copy: the stored value stays as it was put
        again = await ctx.get_state("k")
        refused = False
        try:
            await ctx.set_state("bad", object())
        except TypeError as exc:
            refused = "not serializable" in str(exc)
        await ctx.delete_state("k")
        return {"got": [first, again, refused, await ctx.get_state("k")]}

    async def call() -> Any:
        async with Client(mcp) as client:
            return (await client.call_tool("remember", {})).structured_content

    got = anyio.run(call)
    assert got == {"got": [{"a": [1, 2]}, {"a": [1]}, True, None]}, STATE


@pytest.mark.anyio
async def test_session_state_forgets_a_value_once_its_time_to_live_has_passed() -> None:
    state = SessionState()
    await state.put("gone", StateValue(value=1), ttl=0)
    await state.put("kept", StateValue(value=2), ttl=3600)
    await state.put("always", StateValue(value=3))
    assert await state.get("gone") is None
    assert [await state.get(k) for k in ("kept", "always")] == [
        StateValue(value=2),
        StateValue(value=3),
    ]
    assert await state.get("kept", collection="other") is None
    assert (await state.delete("kept"), await state.delete("kept")) == (True, False)


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


class _Node(BaseModel):
    children: list[_Node] = []


class _Kind(BaseModel):
    kind: str = "a"


class _Described(BaseModel):
    one: _Kind = Field(default_factory=_Kind, description="said beside the reference")
    many: list[_Kind] | None = None
    nested: dict[str, _Outer] = {}


def _result_models() -> list[type[BaseModel]]:
    """Every model a tool of ours declares as its output schema."""
    namespaces = [vars(m) for m in vars(tools).values() if inspect.ismodule(m)]
    found: dict[str, type[BaseModel]] = {}
    for value in [v for names in [*namespaces, vars(services)] for v in names.values()]:
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            found[value.__qualname__] = value
    return list(found.values())


def test_our_inlining_sends_the_schema_fastmcp_would() -> None:
    effect = "tool output schemas differ from what FastMCP would send (compat.inline_refs)"
    dereference_refs = _lookup("fastmcp.utilities.json_schema.dereference_refs", effect)
    models: list[type[BaseModel]] = [*_result_models(), _Outer, _Described, _Node]
    assert len(models) > 20
    for model in models:
        raw = model.model_json_schema()
        assert inline_refs(raw) == dereference_refs(raw), f"{model.__name__}: {effect}"
    assert "$ref" not in json.dumps(inline_refs(_Described.model_json_schema()))
    assert inline_refs(_Node.model_json_schema())["$defs"]  # a cycle: FastMCP's own answer


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


CONNECTIONS = (
    "the HTTP server no longer bounds how long headers may take nor caps its connections "
    "(compat/uvicorn_private.py, transports/connections.py)"
)


class _Recorder:
    """A `ConnectionWatcher` that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.connection: Any = None
        self.between_after_response: bool | None = None

    def opened(self, connection: Any) -> None:
        self.events.append("opened")
        self.connection = connection

    def request_started(self, connection: Any) -> None:
        self.events.append(f"request (between requests: {connection.between_requests})")

    def bytes_between_requests(self, connection: Any) -> None:
        self.events.append("bytes")

    def closed(self, connection: Any) -> None:
        self.events.append("closed")


async def _plain(scope: Any, receive: Any, send: Any, text: bytes) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", str(len(text)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": text})


async def _until(stream: anyio.abc.ByteStream, ending: bytes | None) -> bytes:
    """What `stream` sends until it ends with `ending`, or (None) until the peer closes."""
    data = b""
    while ending is None or not data.endswith(ending):
        try:
            data += await stream.receive()
        except anyio.EndOfStream:
            break
    return data


@pytest.mark.anyio
async def test_uvicorn_httptools_protocol_reports_a_connection_life_to_the_watcher() -> None:
    symbol = "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol"
    _lookup(symbol, CONNECTIONS)
    recorder = _Recorder()

    async def first(scope: Any, receive: Any, send: Any) -> None:
        await _plain(scope, receive, send, b"first")

    async def second(scope: Any, receive: Any, send: Any) -> None:
        await _plain(scope, receive, send, b"second")

    port = free_port()
    config = uvicorn.Config(
        first, port=port, http=watched_protocol(recorder), log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:
                await anyio.sleep(0.01)
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(request[:10])
            while recorder.events[-1:] != ["bytes"]:
                await anyio.sleep(0.01)
            await stream.send(request[10:])
            answer = await _until(stream, b"first")
            assert recorder.connection.between_requests, f"`{symbol}.cycle`: {CONNECTIONS}."
            recorder.connection.refuse_requests(second)
            await stream.send(request)
            answer_after_swap = await _until(stream, b"second")
            recorder.connection.answer_and_close(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            rest = await _until(stream, None)
            while recorder.events[-1:] != ["closed"]:
                await anyio.sleep(0.01)
        server.should_exit = True
    failure = (
        f"{INSTALLED['uvicorn']} changed `{symbol}` (events {recorder.events}): {CONNECTIONS}."
    )
    assert recorder.events == [
        "opened",
        "bytes",
        "request (between requests: False)",
        "request (between requests: False)",
        "closed",
    ], failure
    assert answer.endswith(b"first"), failure
    assert answer_after_swap.endswith(b"second"), f"`{symbol}.app`: {failure}"
    assert rest.startswith(b"HTTP/1.1 408"), f"`{symbol}.transport`: {failure}"


def test_fastmcp_calls_its_span_helpers_by_the_names_compat_replaces() -> None:
    """`spans_skipped_when_off` rebinds `server_span` in fastmcp.server.server and `seam_span` in
    fastmcp.server.low_level: FastMCP must still call them by those names per request, and in
    "off" mode they must yield the invalid span, as FastMCP's disabled tracer does."""
    import fastmcp
    from fastmcp.server import low_level, server
    from fastmcp.server.telemetry import seam_span, server_span
    from opentelemetry.trace import INVALID_SPAN

    from python_mcp_server.compat.fastmcp_private import spans_skipped_when_off

    effect = "FastMCP builds span attributes on every call in 'off' mode (~0.1 ms per call)"
    assert "server_span(" in inspect.getsource(server.FastMCP.call_tool), effect
    assert "seam_span(" in inspect.getsource(low_level.FastMCPServerMiddleware._seam_span), effect
    spans_skipped_when_off()
    spans_skipped_when_off()  # idempotent: one wrapper, not two
    assert getattr(server.__dict__["server_span"], "__wrapped__", None) is server_span, effect
    assert getattr(low_level.__dict__["seam_span"], "__wrapped__", None) is seam_span, effect
    mode = fastmcp.settings.telemetry_mode
    try:
        fastmcp.settings.telemetry_mode = "off"
        with server.__dict__["server_span"]("tools/call x", "tools/call", "s", "tool", "x") as span:
            assert span is INVALID_SPAN
        with low_level.__dict__["seam_span"]("tools/call", "s") as span:
            assert span is INVALID_SPAN
        fastmcp.settings.telemetry_mode = "native"
        with server.__dict__["server_span"]("tools/call x", "tools/call", "s", "tool", "x") as span:
            assert not span.is_recording()  # FastMCP's own helper, no SDK installed
    finally:
        fastmcp.settings.telemetry_mode = mode


@pytest.mark.anyio
async def test_fastmcp_looks_up_a_tool_through_the_gather_compat_replaces() -> None:
    """`one_provider_asked_inline` rebinds `gather` in fastmcp.server.providers.aggregate: FastMCP
    must still look tools up through that name, and a lookup must find the same tools, from one
    provider or from several (a mounted server), with and without the replacement."""
    from fastmcp.server.providers import aggregate
    from fastmcp.utilities.async_utils import gather as original

    from python_mcp_server.compat.fastmcp_private import one_provider_asked_inline

    effect = "every tool call starts a task group and a task to ask one provider (~0.1 ms)"
    assert "gather(" in inspect.getsource(aggregate.AggregateProvider._get_tool), effect
    bound = aggregate.__dict__["gather"]  # FastMCP's, or ours if a server was built already
    aggregate.__dict__["gather"] = original

    async def found() -> list[str | None]:
        inner = FastMCP("inner")
        inner.tool(lambda: 2, name="two")
        outer = FastMCP("outer")
        outer.tool(lambda: 1, name="one")
        lone = FastMCP("lone")
        lone.tool(lambda: 1, name="one")
        outer.mount(inner, namespace="in")
        names = ["one", "in_two", "missing"]
        tools = [await outer.get_tool(name) for name in names] + [await lone.get_tool("one")]
        return [tool.name if tool else None for tool in tools]

    assert await found() == ["one", "in_two", None, "one"]
    try:
        one_provider_asked_inline()
        one_provider_asked_inline()  # idempotent: one wrapper, not two
        assert aggregate.__dict__["gather"].__wrapped__ is original, effect
        assert await found() == ["one", "in_two", None, "one"]
    finally:
        aggregate.__dict__["gather"] = bound


@pytest.mark.anyio
async def test_one_provider_asked_inline_answers_as_fastmcp_gather_does() -> None:
    """Results in order; with `return_exceptions` an error comes back in the list, without it the
    error is raised in a group; a cancellation is never turned into a result."""
    from fastmcp.utilities.async_utils import gather

    from python_mcp_server.compat.fastmcp_private import _inline_when_one

    inline = _inline_when_one(gather)

    async def value(v: int) -> int:
        return v

    async def fail() -> int:
        raise ValueError("no")

    for run in (gather, inline):
        assert await run(iter(())) == []
        assert await run(value(i) for i in [1]) == [1]
        assert await run(value(i) for i in [1, 2, 3]) == [1, 2, 3]
        [error] = await run((fail() for _ in [0]), return_exceptions=True)
        assert isinstance(error, ValueError)
        with pytest.raises(BaseExceptionGroup):
            await run(fail() for _ in [0])

    async def cancelled_inside() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await inline((anyio.sleep(10) for _ in [0]), return_exceptions=True)
            pytest.fail("the cancellation was returned as a result")

    with anyio.fail_after(5):
        await cancelled_inside()
