"""MCP SDK internals we use, each with what it replaces and why.

The SDK answers each 2026-07-28 HTTP request through a streaming path even when the answer is one
JSON object; `PlainJsonCalls` (`middleware/plain_json.py`) hands such requests to the SDK's
JSON-mode entry point instead, which the SDK marks private (`_streamable_http_modern`). It needs
that entry point, the session manager's running state, and the SDK's Accept-header rule, so its
answers match the SDK's own. `tests/test_compat.py` checks each name below.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final

from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

ModernHandler = Callable[[Any, Any, bool, Any, Scope, Receive, Send], Awaitable[None]]

MODERN_HANDLER_PARAMS: Final = (
    "app",
    "security_settings",
    "json_response",
    "lifespan_state",
    "scope",
    "receive",
    "send",
)

# Replaces `mcp.server.transport_security.DEFAULT_MAX_REQUEST_BODY_SIZE`, an undocumented constant:
# `BodyLimitMiddleware` must refuse exactly what the SDK would, before the SDK's bare 413 does.
MAX_REQUEST_BODY_BYTES: Final[int] = DEFAULT_MAX_REQUEST_BODY_SIZE


def modern_handler() -> ModernHandler | None:
    """The SDK's entry for one stateless-era request, answering in JSON mode in the caller's task;
    None when this SDK lacks it or its parameters changed (requests then take the SDK's streaming
    path, which works, only slower).

    Replaces `mcp.server._streamable_http_modern.handle_modern_request`: the SDK's session manager
    calls it with `json_response` fixed per server; we need it per request.
    """
    try:
        from mcp.server._streamable_http_modern import handle_modern_request
    except ImportError:
        return None
    if tuple(inspect.signature(handle_modern_request).parameters) != MODERN_HANDLER_PARAMS:
        return None
    return handle_modern_request


def is_running(manager: StreamableHTTPSessionManager | None) -> bool:
    """Whether there is a session manager and its `run()` is active, so its lifespan state is set.

    Replaces `StreamableHTTPSessionManager._task_group`: the manager's own check before handling a
    request, not exposed.
    """
    return getattr(manager, "_task_group", None) is not None


def lifespan_state(manager: StreamableHTTPSessionManager) -> Any:
    """What the server's lifespan yielded, which `handle_modern_request` passes to handlers.

    Replaces `StreamableHTTPSessionManager._lifespan_state`, set by `run()` and not exposed.
    """
    return manager._lifespan_state


def accepts(request: Request) -> tuple[bool, bool]:
    """(JSON, event stream): what the request's Accept header allows, by the SDK's own rule
    (wildcards included), so we refuse exactly what the SDK would.

    Replaces `mcp.server.streamable_http.check_accept_headers`, an undocumented helper.
    """
    return check_accept_headers(request)
