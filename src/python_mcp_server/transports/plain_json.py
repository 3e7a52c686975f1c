"""`PlainJsonCalls`: stateless-era requests that cannot stream are answered as plain JSON.

The MCP SDK runs every 2026-07-28 POST through its streaming path (a task group, a memory stream,
a disconnect watcher and a deferral timer per request) even when the request has no
progressToken and asks for no log messages: our tools send no other notification, so such a
request never streams and its answer ends up as plain JSON anyway. That path costs about 0.3 ms of server CPU per call. This
wrapper hands those requests to the SDK's JSON mode, which answers in the request's own task,
and keeps what the streaming path gives:

- a client that goes away cancels its call (and so interrupts its cell): a watcher starts once
  the call has run for `watch_after_s` (a call that ends sooner has nothing left to cancel);
- a call still running after `keepalive_s` switches its response to `text/event-stream` and
  pings, as the SDK does, so a proxy's idle timeout does not cut a long cell.

A client that accepts only `application/json` (the SDK's streaming path refuses it with an empty
406) is answered in plain JSON whatever the call, without pings or progress; so is an HTTP/1.0
client, which cannot take a chunked stream. A wrong Content-Type or Accept, and a handshake-era
request that has no session and is not `initialize`, get a JSON-RPC error that names the fix.

Everything else reaches the SDK unchanged: requests with a progressToken, tool calls that ask for
log messages (`io.modelcontextprotocol/logLevel`; the server's notes about a call go out as
warnings), `subscriptions/listen`, other handshake-era and non-POST requests, and every request
when the SDK lacks the entry point this relies on (`available` says which).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import anyio
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.compat import mcp_private
from python_mcp_server.middleware._responses import send_json
from python_mcp_server.middleware.body_limit import (
    INVALID_REQUEST,
    MAX_BODY_BYTES,
    declared_size,
    replay,
)

logger = logging.getLogger(__name__)

_VERSION_HEADER: Final = b"mcp-protocol-version"
_SESSION_HEADER: Final = b"mcp-session-id"
_NEEDS_JSON_BODY: Final = (
    "Invalid Content-Type: send the JSON-RPC message with the header "
    "'Content-Type: application/json'."
)
_NEEDS_ACCEPT: Final = (
    "Not Acceptable: the answer is JSON (or an event stream when the call streams progress); "
    "send the header 'Accept: application/json, text/event-stream'."
)
_NEEDS_SESSION: Final = (
    "No MCP session: either send 'initialize' first and then its Mcp-Session-Id header on every "
    "request (protocol 2025-11-25), or send every request with the header "
    "'MCP-Protocol-Version: 2026-07-28' and the version and client capabilities in "
    "params._meta (stateless; see the README)."
)
_NEEDS_VERSION_HEADER: Final = (
    "No MCP session, and no 'MCP-Protocol-Version' header: the request names protocol {0!r} in "
    "params._meta, so send it with the header 'MCP-Protocol-Version: {0}' too (a request without "
    "that header belongs to the 2025-11-25 era, which needs 'initialize' first)."
)
_META_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final = b": ping\r\n\r\n"
# A body naming either of these may stream: leave it to the SDK (a false match only costs speed).
_STREAMING_MARKERS: Final = (b"progressToken", b"subscriptions/listen")
_LOG_LEVEL: Final = b"io.modelcontextprotocol/logLevel"


_HANDLER: Final = mcp_private.modern_handler()


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
            or not mcp_private.is_running(manager)
            or (size is not None and size > MAX_BODY_BYTES)  # BodyLimitMiddleware answers it
        ):
            await self.app(scope, receive, send)
            return
        if handshake_era(scope):
            await self._handshake_era(scope, receive, send)
            return
        request = Request(scope)
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            await _refuse(send, 400, _NEEDS_JSON_BODY)
            return
        takes_json, takes_stream = mcp_private.accepts(request)
        # an event stream is chunked, which HTTP/1.0 has not: such a client gets plain JSON
        takes_stream = takes_stream and scope.get("http_version") != "1.0"
        if not takes_json:
            await _refuse(send, 406, _NEEDS_ACCEPT)
            return
        body = await read_body(receive)
        if body is None:  # the client left before sending its request
            return
        if takes_stream and _may_stream(body):
            await self.app(scope, replay(body, receive), send)
            return
        await self._answer(manager, scope, body, receive, send, can_stream=takes_stream)

    async def _handshake_era(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request without a session that is not `initialize` gets told both ways to start; the
        SDK's answer ("Missing session ID") names neither."""
        if header(scope, _SESSION_HEADER) is not None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        request = request_of(body)
        method = request.get("method") if request is not None else None
        if b'"initialize"' not in body and isinstance(method, str) and method != "initialize":
            assert request is not None
            version = _meta_version(request)
            message = _NEEDS_SESSION if version is None else _NEEDS_VERSION_HEADER.format(version)
            await _refuse(send, 400, message, request.get("id"))
            return
        await self.app(scope, replay(body, receive), send)

    async def _answer(
        self,
        manager: Any,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        *,
        can_stream: bool,
    ) -> None:
        """Run the call in this task; cancel it if the client goes away; ping while it is silent."""
        assert _HANDLER is not None
        response = _Response(send)
        call = _HANDLER(
            manager.app,
            manager.security_settings,
            True,
            mcp_private.lifespan_state(manager),
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
            ]
            if can_stream:
                timers.append(
                    loop.call_later(
                        self.keepalive_s,
                        lambda: tasks.append(
                            loop.create_task(response.ping_every(self.keepalive_s))
                        ),
                    )
                )
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


async def read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _may_stream(body: bytes) -> bool:
    """Whether the request may get notifications: progress, a subscription, or log messages
    about a tool call."""
    if any(marker in body for marker in _STREAMING_MARKERS):
        return True
    return _LOG_LEVEL in body and b'"tools/call"' in body


def header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


def handshake_era(scope: Scope) -> bool:
    """Whether the request belongs to the handshake era (2025-11-25 and before): its
    MCP-Protocol-Version is one of those versions, or absent."""
    version = header(scope, _VERSION_HEADER)
    return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS


def request_of(body: bytes) -> dict[str, Any] | None:
    """The body as one JSON-RPC message object, or None if it does not parse as one."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def method_of(body: bytes) -> str | None:
    """The method a JSON-RPC body names, or None if it does not parse as one request."""
    request = request_of(body)
    method = request.get("method") if request is not None else None
    return method if isinstance(method, str) else None


def _meta_version(request: dict[str, Any]) -> str | None:
    """The stateless-era protocol version a request names in `params._meta`, if any."""
    params = request.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    version = meta.get(_META_VERSION) if isinstance(meta, dict) else None
    return (
        version if isinstance(version, str) and version not in HANDSHAKE_PROTOCOL_VERSIONS else None
    )


async def _refuse(send: Send, status: int, message: str, request_id: object = None) -> None:
    """A JSON-RPC error, with the request's id when it has a valid one (a string or an integer)."""
    error = {"code": INVALID_REQUEST, "message": message}
    valid = isinstance(request_id, str | int) and not isinstance(request_id, bool)
    answer = {"jsonrpc": "2.0", "id": request_id if valid else None, "error": error}
    await send_json(send, status, answer)
