"""Composition root: `create_server(config)` builds the FastMCP app; `serve(config)` runs it
(`built(config)` builds it first, in any thread, and returns what runs it)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import fastmcp
import uvicorn
from anyio.abc import TaskGroup
from fastmcp import FastMCP
from fastmcp.tools import Tool
from mcp.shared.message import SessionMessage
from starlette.middleware import Middleware as ASGIMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from python_mcp_server import __version__
from python_mcp_server.compat import fastmcp_private
from python_mcp_server.config import ServerConfig
from python_mcp_server.middleware import (
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    DomainErrorMiddleware,
    HeaderWhitespaceMiddleware,
    LinksAsTextMiddleware,
    TimingMiddleware,
)
from python_mcp_server.playground import asset_paths, serve_asset
from python_mcp_server.rest import rest_routes
from python_mcp_server.runtime import Services, lifespan_for
from python_mcp_server.tools import RESOURCES, TOOLS, domain_errors, listed
from python_mcp_server.transports import (
    ConnectionGuard,
    CountRequests,
    HandshakeSessions,
    Inbound,
    InFlight,
    LineReader,
    PlainJsonCalls,
    claimed_stdio,
    connection_limits,
    raise_open_files_limit,
    read_messages,
    write_messages,
)

logger = logging.getLogger(__name__)

_REPEAT_WINDOW_S = 1.0  # signals this close together count as one
_FLUSH_S = 5.0  # at the end of stdio input, time left to write the last answers
_DRAIN_S = 5.0  # after a signal, most time for calls to be answered and followed up
_QUIET_S = 1.0  # after the last answer, time for a client's follow-up requests

INSTRUCTIONS = """\
Runs Python in persistent Jupyter kernels. Call run_python_code to execute code; variables persist
between calls in a session. Sessions isolate work: create_session gives you your own kernel, and
every kernel tool takes an optional session_id (default 'default'). Files live in a sandboxed
workspace folder (list_files, read_file, write_file). Errors raised by your code come back as data
with status 'error'; tool errors say what to do next."""


def create_server(config: ServerConfig, services: Services | None = None) -> FastMCP[Any]:
    """A fresh server for `config`. Its lifespan starts and stops every kernel, unless
    `services` is given: then the caller opened them and closes them."""
    mcp: FastMCP[Any] = FastMCP(
        name="python-mcp-server",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan_for(config, services),
        mask_error_details=True,
        middleware=[DomainErrorMiddleware(), TimingMiddleware(), LinksAsTextMiddleware()],
    )
    fastmcp_private.keep_session_state_in_memory(mcp)
    for tool in TOOLS:
        mcp.add_tool(listed(Tool.from_function(domain_errors(tool))))
    for resource in RESOURCES:
        mcp.add_resource(resource)

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    if _serves_playground(config):
        for path in sorted(asset_paths()):
            mcp.custom_route(path, methods=["GET"])(serve_asset)
    return mcp


def _serves_playground(config: ServerConfig) -> bool:
    """The playground is served at `/` unless the MCP endpoint was put on one of its paths."""
    return config.path not in asset_paths()


def http_app(
    mcp: FastMCP[Any],
    config: ServerConfig,
    *,
    keepalive_s: float = 15.0,
    in_flight: InFlight | None = None,
) -> Any:
    """The Starlette app serving `mcp` at `config.path`. A stateless-era call silent for
    `keepalive_s` seconds gets its answer as an event stream with pings; the table of
    handshake-era sessions is kept to `config.max_mcp_sessions`. `in_flight`, when given, holds
    the requests being answered."""
    middleware = [ASGIMiddleware(HeaderWhitespaceMiddleware)]
    if in_flight is not None:
        middleware.insert(0, ASGIMiddleware(CountRequests, in_flight=in_flight))
    if config.auth_token:
        open_paths = asset_paths() if _serves_playground(config) else frozenset()
        middleware.append(
            ASGIMiddleware(BearerAuthMiddleware, token=config.auth_token, open_paths=open_paths)
        )
    middleware.append(ASGIMiddleware(BodyLimitMiddleware, timeout_s=config.body_timeout_s))
    app = mcp.http_app(
        path=config.path,
        middleware=middleware,
        host_origin_protection="auto",
    )
    app.router.routes.extend(
        rest_routes(mcp, __version__, token=bool(config.auth_token), keepalive_s=keepalive_s)
    )
    for route in app.routes:
        if isinstance(route, Route) and route.path == config.path:
            route.app = HandshakeSessions(
                PlainJsonCalls(route.app, keepalive_s=keepalive_s),
                max_sessions=config.max_mcp_sessions,
                unused_timeout_s=config.mcp_session_unused_timeout_s,
            )
    return app


def quiet_telemetry() -> None:
    """Turn FastMCP's OpenTelemetry spans off when nothing could record them.

    Without the OpenTelemetry SDK installed the spans are no-ops that still cost about 0.1 ms per
    call; in "off" mode FastMCP still builds each span's attributes, which
    `spans_skipped_when_off` spares. A mode chosen with `FASTMCP_TELEMETRY_MODE`, or an installed
    SDK, is left alone.
    """
    fastmcp_private.spans_skipped_when_off()
    if "FASTMCP_TELEMETRY_MODE" in os.environ:
        return
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        fastmcp.settings.telemetry_mode = "off"
        logger.debug("OpenTelemetry SDK not installed: FastMCP spans off")


class _Uvicorn(uvicorn.Server):
    """uvicorn whose signals are handled by `serve`.

    Plain uvicorn re-raises a captured SIGTERM once it has stopped, which would end the process
    before the caller shuts the kernels down. The "serving" line is logged once the port is bound.
    """

    def __init__(self, config: uvicorn.Config, mcp_path: str) -> None:
        super().__init__(config)
        self.mcp_path = mcp_path

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Bind, then say where: the port is the one bound (with --port 0, the one picked)."""
        await super().startup(sockets)
        bound = [sock for server in self.servers for sock in server.sockets or ()]
        if self.started and bound:
            host = self.config.host
            url_host = f"[{host}]" if ":" in host else host
            port = bound[0].getsockname()[1]
            logger.info("serving MCP on http://%s:%s%s", url_host, port, self.mcp_path)


async def _until_signal(stop: Callable[[int], None]) -> None:
    """Call `stop(signum)` for each SIGTERM, SIGINT or SIGHUP until cancelled."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
        async for signum in sigs:
            logger.info("signal %s: shutting down", signum)
            stop(signum)


def adopt_fastmcp_logging() -> None:
    """FastMCP logs through its own rich handler at INFO; route it through ours instead, so its
    lines share the server's format and follow --log-level."""
    fastmcp_logger = logging.getLogger("fastmcp")
    fastmcp_logger.handlers.clear()
    fastmcp_logger.setLevel(logging.NOTSET)
    fastmcp_logger.propagate = True


async def serve(config: ServerConfig, services: Services | None = None) -> None:
    """Run until a signal (HTTP and stdio) or end of input (stdio); every kernel is shut down
    (by the caller when it passed `services`)."""
    await built(config, services)()


def built(config: ServerConfig, services: Services | None = None) -> Callable[[], Awaitable[None]]:
    """The server for `config`, built now, and the coroutine function that serves it (`serve`).

    Building needs no event loop: `launch` builds in a worker thread while the first kernel
    starts and loads its extension on the loop."""
    quiet_telemetry()
    fastmcp_private.one_provider_asked_inline()
    adopt_fastmcp_logging()
    mcp = create_server(config, services)

    async def run() -> None:
        if config.transport == "stdio":
            await _serve_stdio(mcp, services)
        else:
            await _serve_http(mcp, config, services)

    return run


async def _serve_stdio(mcp: FastMCP[Any], services: Services | None) -> None:
    in_flight = InFlight()
    async with anyio.create_task_group() as tg:
        serving = anyio.CancelScope()
        stop = _StdioStop(serving, tg, in_flight, services)
        # signals stay handled until the server has stopped (a second one stops at once)
        tg.start_soon(_until_signal, stop)
        with serving:
            if fastmcp_private.runs_on_our_stdio(mcp):
                await _run_stdio(mcp, in_flight)
            else:  # a FastMCP without the parts used below: its own runner (and the SDK's stdio)
                await mcp.run_stdio_async(show_banner=False)
        tg.cancel_scope.cancel()


class _StdioStop:
    """What a signal does to the stdio server: interrupt running cells and give their calls, and
    the requests a client sends right after an answer (see `transports.in_flight`), up to
    `_DRAIN_S` to be answered, then stop; a second signal stops at once."""

    def __init__(
        self,
        serving: anyio.CancelScope,
        tg: TaskGroup,
        in_flight: InFlight,
        services: Services | None,
    ) -> None:
        self._serving = serving
        self._tg = tg
        self._in_flight = in_flight
        self._services = services
        self._stopping = False

    def __call__(self, signum: int) -> None:
        if self._stopping:
            self._serving.cancel()
            return
        self._stopping = True
        self._tg.start_soon(self._stop)

    async def _stop(self) -> None:
        with anyio.move_on_after(_DRAIN_S):
            if self._services is not None:
                await self._services.sessions.interrupt_running()
            await self._in_flight.quiet(_QUIET_S)
        self._serving.cancel()


async def _run_stdio(mcp: FastMCP[Any], in_flight: InFlight) -> None:
    """FastMCP's stdio runner on our transport (see `transports.stdio`)."""
    with fastmcp_private.stdio_transport():
        async with fastmcp_private.lifespan(mcp):
            with claimed_stdio() as (wire_in, wire_out):
                await _serve_lines(mcp, wire_in, wire_out, in_flight)


async def _serve_lines(mcp: FastMCP[Any], wire_in: int, wire_out: int, in_flight: InFlight) -> None:
    to_server, from_client = anyio.create_memory_object_stream[Inbound](0)
    to_client, from_server = anyio.create_memory_object_stream[SessionMessage](0)
    low = fastmcp_private.low_level_server(mcp)
    async with anyio.create_task_group() as tg:
        reader = LineReader(wire_in)
        tg.start_soon(read_messages, reader, to_server, to_client.clone(), in_flight)
        tg.start_soon(write_messages, from_server, wire_out, in_flight)
        async with to_client:
            await low.run(from_client, to_client, low.create_initialization_options())
        # the server is done (end of input): the writer sends what is left, then ends
        tg.cancel_scope.deadline = anyio.current_time() + _FLUSH_S


def connection_guard(config: ServerConfig) -> ConnectionGuard:
    """The guard on the HTTP server's connections, with the open-files limit raised first."""
    kernels = config.max_sessions + config.kernel_pool_size
    cap, backlog = connection_limits(config.max_connections, raise_open_files_limit(), kernels)
    return ConnectionGuard(cap=cap, backlog=backlog, header_timeout_s=config.header_timeout_s)


def uvicorn_config(app: Any, config: ServerConfig, guard: ConnectionGuard) -> uvicorn.Config:
    """uvicorn's settings for serving `app`, its connections watched by `guard`."""
    return uvicorn.Config(
        app,
        http=guard.protocol_class(),
        backlog=guard.backlog,
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        log_config=None,
        access_log=config.log_level == "DEBUG",  # tool calls are logged by TimingMiddleware
        lifespan="on",
        timeout_graceful_shutdown=3,  # running cells get 1 s to stop, then their kernel
        ws="none",
    )


async def _serve_http(mcp: FastMCP[Any], config: ServerConfig, services: Services | None) -> None:
    guard = connection_guard(config)
    in_flight = InFlight()
    app = http_app(mcp, config, in_flight=in_flight)
    server = _Uvicorn(uvicorn_config(app, config, guard), config.path)
    failed: str | int | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_until_signal, _HttpStop(server, tg, services, in_flight))
        logger.info("HTTP: at most %d connections held at once", guard.cap)
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn's way to say it could not start; it logged why
            failed = exc.code
            logger.error(
                "could not serve on %s:%s; if the port is taken, stop what uses it or pass "
                "--port with another port",
                config.host,
                config.port,
            )
        tg.cancel_scope.cancel()
    if failed is not None:
        raise SystemExit(failed)


class _HttpStop:
    """What a signal does to the HTTP server: interrupt running cells so their calls still get
    an answer, keep serving until those answers and the requests clients send right after one
    (see `transports.in_flight`) are answered, then ask uvicorn to stop. New cells and sessions
    are refused meanwhile. A second signal stops at once, unless it is the same Ctrl-C delivered
    twice (the terminal signals the whole process group, and `uv run` forwards it too)."""

    def __init__(
        self,
        server: uvicorn.Server,
        tg: TaskGroup,
        services: Services | None,
        in_flight: InFlight,
    ) -> None:
        self._server = server
        self._tg = tg
        self._services = services
        self._in_flight = in_flight
        self._first = 0.0

    def __call__(self, signum: int) -> None:
        now = time.monotonic()
        if not self._first:
            self._first = now
            self._tg.start_soon(self._drain)
        elif now - self._first > _REPEAT_WINDOW_S:
            self._server.force_exit = True
            self._server.should_exit = True

    async def _drain(self) -> None:
        with anyio.move_on_after(_DRAIN_S):
            if self._services is not None:
                await self._services.sessions.interrupt_running()
            await self._in_flight.quiet(_QUIET_S)
        self._server.should_exit = True
