"""What the REST endpoints share: the request body `{name, arguments}`, the call through FastMCP's
own tool dispatch (the same tools, middleware and validation an MCP client gets), and each
failure as an HTTP status with `{"error": {"type", "message"}}` naming the fix.

Requests that another site's page made are refused (`check_site`). A body may come without `Content-Type: application/json` (curl's `-d` sends a form type) only
from a client that is not a browser page: a request with an `Origin` or a cross-site
`Sec-Fetch-Site` must say it sends JSON, which a browser only does cross-origin after a CORS
preflight this server never grants. So a foreign page cannot post code with a "simple" request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Final

from fastmcp import FastMCP
from fastmcp.exceptions import FastMCPError, NotFoundError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.tools import ToolResult
from starlette.types import Receive, Scope, Send

from python_mcp_server.errors import (
    ArtifactNotFoundError,
    FileTooLargeError,
    InvalidArgumentError,
    KernelBusyError,
    KernelNotFoundError,
    KernelStartError,
    PathOutsideWorkspaceError,
    ResourceLimitError,
    ScriptNotFoundError,
    ServerError,
    ServerStoppingError,
    SessionExistsError,
    SessionExpiredError,
    SessionLimitError,
    SessionOutputsGoneError,
    WorkspaceFileExistsError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.middleware._responses import send_json

logger = logging.getLogger(__name__)

BODY_SHAPE: Final = (
    'Send a JSON object {"name": "<tool>", "arguments": {...}}, e.g. {"name": '
    '"execute_python", "arguments": {"code": "print(1)"}}; GET /tools lists the tools and '
    "their arguments."
)
_FIELDS: Final = frozenset({"name", "arguments"})

# ServerError subclasses -> (HTTP status, error type); the first match wins
_STATUSES: Final[tuple[tuple[type[ServerError], int, str], ...]] = (
    (ServerStoppingError, 503, "unavailable"),
    (KernelStartError, 503, "unavailable"),
    (InvalidArgumentError, 422, "invalid_arguments"),
    (PathOutsideWorkspaceError, 403, "forbidden"),
    (FileTooLargeError, 413, "too_large"),
    (SessionLimitError, 429, "limit"),
    (ResourceLimitError, 429, "limit"),
    (SessionExistsError, 409, "conflict"),
    (WorkspaceFileExistsError, 409, "conflict"),
    (KernelBusyError, 409, "conflict"),
    (KernelNotFoundError, 404, "not_found"),
    (SessionExpiredError, 404, "not_found"),
    (WorkspaceFileNotFoundError, 404, "not_found"),
    (ScriptNotFoundError, 404, "not_found"),
    (ArtifactNotFoundError, 404, "not_found"),
    (SessionOutputsGoneError, 404, "not_found"),
)


class RestError(Exception):
    """A request the REST API refuses: its HTTP status, a short type and a message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message

    def payload(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message}}

    async def send(self, send: Send) -> None:
        await send_json(send, self.status, self.payload())


@dataclass(frozen=True)
class Call:
    """One tool call asked for over REST."""

    name: str
    arguments: dict[str, Any]


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def check_site(scope: Scope) -> None:
    """RestError 403 for a request another site's page made: browsers name the relation in
    `Sec-Fetch-Site` on every request, also on those that carry no `Origin` (an `<img>` or a
    `<script>` pointing here), which the Origin check cannot see."""
    site = header(scope, b"sec-fetch-site")
    if site in ("cross-site", "same-site"):
        raise RestError(
            403,
            "forbidden",
            f"A page of another site made this request (Sec-Fetch-Site: {site}); the REST API "
            "answers only its own pages and clients that are not browsers.",
        )


def from_browser_page(scope: Scope) -> bool:
    """Whether a web page may have made the request: browsers send `Origin` with every POST a
    page makes, and `Sec-Fetch-Site` other than 'none' (typed or bookmarked) with every request."""
    site = header(scope, b"sec-fetch-site")
    return header(scope, b"origin") is not None or (site is not None and site != "none")


async def read_body(receive: Receive) -> bytes | None:
    """The request body (already read whole by `BodyLimitMiddleware`); None if the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_call(scope: Scope, body: bytes) -> Call:
    """The `{name, arguments}` of a POST body; RestError (400, 403, 415) when it is not one."""
    check_site(scope)
    content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and from_browser_page(scope):
        raise RestError(
            415,
            "unsupported_media_type",
            f"The body must be sent as JSON: add the header 'Content-Type: application/json' "
            f"(got {content_type or 'none'!r}).",
        )
    if not body.strip():
        raise RestError(400, "invalid_request", f"The request has no body. {BODY_SHAPE}")
    try:
        decoded = json.loads(body)
    except UnicodeDecodeError:
        raise RestError(
            400, "invalid_request", f"The body is not UTF-8 text. {BODY_SHAPE}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise RestError(
            400, "invalid_request", f"The body is not valid JSON ({exc}). {BODY_SHAPE}"
        ) from None
    if not isinstance(decoded, dict):
        raise RestError(400, "invalid_request", f"The body is JSON but not an object. {BODY_SHAPE}")
    extra = sorted(set(decoded) - _FIELDS)
    if extra:
        raise RestError(
            400,
            "invalid_request",
            f"Unknown field(s) {', '.join(map(repr, extra))} in the body: it has only 'name' and "
            f"'arguments' (the tool's arguments go inside 'arguments'). {BODY_SHAPE}",
        )
    name = decoded.get("name")
    if not isinstance(name, str) or not name:
        raise RestError(400, "invalid_request", f"'name' must name a tool. {BODY_SHAPE}")
    arguments = decoded.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise RestError(
            400,
            "invalid_request",
            f"'arguments' must be a JSON object of the tool's arguments, not "
            f"{type(arguments).__name__}. {BODY_SHAPE}",
        )
    return Call(name, arguments)


async def check_tool(mcp: FastMCP[Any], name: str) -> None:
    """RestError 404 naming the tools when `name` is not one."""
    if await mcp.get_tool(name) is None:
        names = sorted(tool.name for tool in await mcp.list_tools())
        raise RestError(
            404,
            "unknown_tool",
            f"Unknown tool {name!r}. Tools: {', '.join(names)} (GET /tools lists them with their "
            "arguments).",
        )


async def run_call(mcp: FastMCP[Any], call: Call) -> dict[str, Any]:
    """The tool's structured result; RestError for every failure."""
    try:
        result = await mcp.call_tool(call.name, call.arguments)
    except NotFoundError as exc:  # removed since check_tool
        raise RestError(404, "unknown_tool", str(exc)) from exc
    except FastMCPError as exc:
        raise rest_error(exc) from exc
    except Exception as exc:  # a bug below FastMCP's own handling: the caller still gets an answer
        logger.exception("REST call of %s failed", call.name)
        raise RestError(
            500, "internal", "The server failed unexpectedly; its log has the details."
        ) from exc
    return structured(result)


def structured(result: ToolResult) -> dict[str, Any]:
    """The structured content every tool of this server returns."""
    data = result.structured_content
    if data is None:  # every tool has an output schema; a plain-content one is still shown
        return {"content": [block.model_dump(mode="json") for block in result.content]}
    return dict(data)


def rest_error(exc: FastMCPError) -> RestError:
    """The HTTP form of a failed call or read: our own errors by their class, argument errors
    422, anything else (a bug, masked as for MCP clients) 500."""
    cause = exc.__cause__
    if isinstance(cause, ServerError):
        for cls, status, kind in _STATUSES:
            if isinstance(cause, cls):
                return RestError(status, kind, str(cause))
        return RestError(400, "tool_error", str(cause))
    if isinstance(exc, ArgumentsError) or isinstance(cause, ArgumentsError):
        return RestError(422, "invalid_arguments", str(exc))
    if cause is None or isinstance(cause, FastMCPError):
        return RestError(400, "tool_error", str(exc))
    return RestError(
        500,
        "internal",
        f"{exc} The server failed unexpectedly; its log has the details.",
    )
