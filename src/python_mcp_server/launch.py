"""Process start: the first kernel boots while the MCP stack is imported.

A kernel takes about half a second to start; importing FastMCP and the MCP SDK and building the
server takes longer. `run(config)` opens the services first (their light imports come first, and
the warm pool starts its kernel in another process at once), imports and builds the server in a
worker thread meanwhile (the event loop stays free to give the new kernel its extension), then
serves. A desktop client's first call is answered that much sooner. What only some servers need
is imported only by them (the gateway's client), and the first call imports nothing more
(`compat.fastmcp_private.keep_session_state_in_memory`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.services import Services

logger = logging.getLogger(__name__)

Serve = Callable[[], Awaitable[None]]
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _build_server(config: ServerConfig, services: Services) -> Serve:
    from python_mcp_server.server import built

    return built(config, services)


async def run(config: ServerConfig) -> None:
    """Serve `config` until a signal or end of input; every kernel is shut down on the way out.

    A signal while starting (services opening, server importing) stops at once and still ends
    the kernels already started; once serving, the server handles signals itself.
    """
    async with contextlib.AsyncExitStack() as stack:
        serve: Serve | None = None
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            async with anyio.create_task_group() as tg:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        logger.info("signal %s while starting: shutting down", signum)
                        tg.cancel_scope.cancel()
                        return

                tg.start_soon(stop_on_signal)
                services = await stack.enter_async_context(Services.open(config))
                serve = await anyio.to_thread.run_sync(
                    _build_server, config, services, abandon_on_cancel=True
                )
                tg.cancel_scope.cancel()
        _collect_from_here()
        if serve is not None:
            await serve()
        # From here the process only ends: the kernels shut down as the stack closes, and a
        # repeated signal must not cut that (or the exit after it) short. Closing a signal
        # receiver restores the default action, hence the ignoring on either side of it.
        _ignore_stop_signals()
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as late:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_log_repeats, late)
                await stack.aclose()
                tg.cancel_scope.cancel()
        _ignore_stop_signals()


def _collect_from_here() -> None:
    """Turn the cycle collector back on if the process entry (`cli.main`) turned it off.

    What the start built lives as long as the process: frozen, the collector never scans it
    again, which also keeps each call's collections small.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
        logger.debug("started: %d objects frozen, cycle collector on", gc.get_freeze_count())


def _ignore_stop_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


async def _log_repeats(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        logger.info("signal %s: already shutting down the kernels", signum)
