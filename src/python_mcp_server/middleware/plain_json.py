"""`PlainJsonCalls`: stateless-era requests that cannot stream are answered as plain JSON.

The MCP SDK runs every 2026-07-28 POST through its streaming path (a task group, a memory stream,
a disconnect watcher and a deferral timer per request) even when the request has no
progressToken: our tools send no other notification, so such a request never streams and its
answer ends up as plain JSON anyway. That path costs about 0.4 ms of server CPU per call. This
wrapper hands those requests to the SDK's JSON mode, which answers in the request's own task,
and keeps what the streaming path gives:

- a client that goes away cancels its call (and so interrupts its cell): a watcher starts once
  the call has run for `watch_after_s` (a call that ends sooner has nothing left to cancel);
- a call silent for `keepalive_s` switches its response to `text/event-stream` and pings, as the
  SDK does, so a proxy's idle timeout does not cut a long cell.

Everything else reaches the SDK unchanged: requests with a progressToken, `subscriptions/listen`,
handshake-era and non-POST requests, clients that do not accept an event stream, and every
request when the SDK lacks the entry point this relies on (`available` says which).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
from mcp.server.streamable_http import check_accept_headers
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.middleware.body_limit import MAX_BODY_BYTES, declared_size, replay

logger = logging.getLogger(__name__)

ModernHandler = Callable[[Any, Any, bool, Any, Scope, Receive, Send], Awaitable[None]]

_EXPECTED_PARAMS: Final = (
    "app",
    "security_settings",
    "json_response",
    "lifespan_state",
    "scope",
    "receive",
    "send",
)
_VERSION_HEADER: Final = b"mcp-protocol-version"
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final = b": ping\r\n\r\n"
# A body naming either of these may stream: leave it to the SDK (a false match only costs speed).
_STREAMING_MARKERS: Final = (b"progressToken", b"subscriptions/listen")


def _modern_handler() -> ModernHandler | None:
    """The SDK's JSON-capable entry for one stateless-era request, if this SDK has it as expected."""
    try:
        from mcp.server._streamable_http_modern import handle_modern_request
    except ImportError:
        return None
    if tuple(inspect.signature(handle_modern_request).parameters) != _EXPECTED_PARAMS:
        return None
    return handle_modern_request


_HANDLER: Final = _modern_handler()


class PlainJsonCalls:
    """Wraps FastMCP's streamable-HTTP endpoint (whose `session_manager` its lifespan sets)."""

    available: Final = _HANDLER is not None

    def __init__(
        self, app: ASGIApp, *, keepalive_s: float = 15.0, watch_after_s: float = 0.05
    ) -> None:
        self.app = app
        self.keepalive_s = keepalive_s
        self.watch_after_s = watch_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = getattr(self.app, "session_manager", None)
        size = declared_size(scope)
        if (
            _HANDLER is None
            or scope["type"] != "http"
            or scope.get("method") != "POST"
            or getattr(manager, "_task_group", None) is None
            or not _stateless_era(scope)
            or not _accepts_json_and_sse(scope)
            or size is None
            or size > MAX_BODY_BYTES
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client left before sending its request
            return
        if any(marker in body for marker in _STREAMING_MARKERS):
            await self.app(scope, replay(body, receive), send)
            return
        await self._answer(manager, scope, body, receive, send)

    async def _answer(
        self, manager: Any, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> None:
        """Run the call in this task; cancel it if the client goes away; ping while it is silent."""
        assert _HANDLER is not None
        response = _Response(send)
        call = _HANDLER(
            manager.app,
            manager.security_settings,
            True,
            manager._lifespan_state,
            scope,
            replay(body, receive),
            response.send,
        )
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        with anyio.CancelScope() as cancel:
            timers = [
                loop.call_later(
                    self.watch_after_s,
                    lambda: tasks.append(loop.create_task(_cancel_on_disconnect(receive, cancel))),
                ),
                loop.call_later(
                    self.keepalive_s,
                    lambda: tasks.append(loop.create_task(response.ping_every(self.keepalive_s))),
                ),
            ]
            try:
                await call
            finally:
                for timer in timers:
                    timer.cancel()
                for task in tasks:
                    task.cancel()
        if cancel.cancelled_caught:
            logger.debug("the client went away; its call was cancelled")


class _Response:
    """The response of one call: plain JSON, unless the call stays silent long enough to need
    pings; then an event stream whose last event is the JSON-RPC answer."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()
        self._mode = "pending"  # then "json" or "stream"
        self._body = bytearray()

    async def send(self, message: Message) -> None:
        async with self._lock:
            if self._mode != "stream":
                if message["type"] == "http.response.start":
                    self._mode = "json"
                await self._send(message)
                return
            if message["type"] == "http.response.body":
                self._body += message.get("body", b"")
                if not message.get("more_body", False):
                    event = b"event: message\r\ndata: " + bytes(self._body) + b"\r\n\r\n"
                    await self._send({"type": "http.response.body", "body": event})

    async def ping_every(self, interval_s: float) -> None:
        while True:
            if not await self._ping():
                return  # the answer went out as plain JSON
            await asyncio.sleep(interval_s)

    async def _ping(self) -> bool:
        async with self._lock:
            if self._mode == "json":
                return False
            if self._mode == "pending":
                self._mode = "stream"
                await self._send(
                    {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS}
                )
            await self._send({"type": "http.response.body", "body": _PING, "more_body": True})
            return True


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


def _stateless_era(scope: Scope) -> bool:
    version = _header(scope, _VERSION_HEADER)
    return version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS


def _accepts_json_and_sse(scope: Scope) -> bool:
    """The streaming path needs both; without them the SDK answers 406, so let it."""
    return all(check_accept_headers(Request(scope)))
