"""Composition root: `create_server(config)` builds the FastMCP app; `serve(config)` runs it."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
from typing import Any

import anyio
import fastmcp
import uvicorn
from fastmcp import FastMCP
from starlette.middleware import Middleware as ASGIMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from python_mcp_server import __version__
from python_mcp_server.config import ServerConfig
from python_mcp_server.middleware import (
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    DomainErrorMiddleware,
    TimingMiddleware,
)
from python_mcp_server.runtime import lifespan_for
from python_mcp_server.tools import MODULES

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Runs Python in persistent Jupyter kernels. Call run_python_code to execute code; variables persist
between calls in a session. Sessions isolate work: create_session gives you your own kernel, and
every kernel tool takes an optional session_id (default 'default'). Files live in a sandboxed
workspace folder (list_files, read_file, write_file). Errors raised by your code come back as data
with status 'error'; tool errors say what to do next."""


def create_server(config: ServerConfig) -> FastMCP[Any]:
    """A fresh server for `config`. Its lifespan starts and stops every kernel."""
    mcp: FastMCP[Any] = FastMCP(
        name="python-mcp-server",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan_for(config),
        mask_error_details=True,
        middleware=[DomainErrorMiddleware(), TimingMiddleware()],
    )
    for module in MODULES:
        module.register(mcp)

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    return mcp


def http_app(mcp: FastMCP[Any], config: ServerConfig) -> Any:
    middleware = []
    if config.auth_token:
        middleware.append(ASGIMiddleware(BearerAuthMiddleware, token=config.auth_token))
    middleware.append(ASGIMiddleware(BodyLimitMiddleware))
    return mcp.http_app(
        path=config.path,
        middleware=middleware,
        host_origin_protection="auto",
    )


def quiet_telemetry() -> None:
    """Turn FastMCP's OpenTelemetry spans off when nothing could record them.

    Without the OpenTelemetry SDK installed the spans are no-ops that still cost about 0.1 ms per
    call. A mode chosen with `FASTMCP_TELEMETRY_MODE`, or an installed SDK, is left alone.
    """
    if "FASTMCP_TELEMETRY_MODE" in os.environ:
        return
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        fastmcp.settings.telemetry_mode = "off"
        logger.debug("OpenTelemetry SDK not installed: FastMCP spans off")


async def serve(config: ServerConfig) -> None:
    """Run until a signal (HTTP and stdio) or end of input (stdio); every kernel is shut down."""
    quiet_telemetry()
    mcp = create_server(config)
    if config.transport == "stdio":
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(
                    signal.SIGTERM, signal.SIGINT, signal.SIGHUP
                ) as sigs:
                    async for signum in sigs:
                        logger.info("signal %s: shutting down", signum)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            await mcp.run_stdio_async(show_banner=False)
            tg.cancel_scope.cancel()
        return
    app = http_app(mcp, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level.lower(),
            log_config=None,
            access_log=config.log_level == "DEBUG",  # tool calls are logged by TimingMiddleware
            lifespan="on",
            timeout_graceful_shutdown=2,
            ws="none",
        )
    )
    logger.info("serving MCP on http://%s:%s%s", config.host, config.port, config.path)
    await server.serve()
