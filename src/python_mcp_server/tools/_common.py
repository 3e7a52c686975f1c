"""Small pieces shared by the tool modules: argument types, annotations, result shaping."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, ParamSpec, TypeVar

from fastmcp import Context
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import TextContent, ToolAnnotations
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from python_mcp_server.errors import ServerError
from python_mcp_server.runtime import caller_key, live_output, services
from python_mcp_server.text import escape_surrogates, on_strings
from python_mcp_server.tools._schemas import output_schema

P = ParamSpec("P")
R = TypeVar("R")

LOGGER_NAME = "python-mcp-server"  # names the log messages sent to clients

ToolFunction = Callable[..., Awaitable[Any]]
"""A tool or resource: a module-level async function carrying FastMCP's `@tool` or `@resource`
metadata, added to the server by `server.py`."""

SessionArg = Annotated[
    str | None,
    Field(
        description="Omit for your current session.",
    ),
]

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
RUNS_CODE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)
CHANGES_STATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)
IDEMPOTENT_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


def seconds_check(most: float | None = None) -> BeforeValidator:
    """A validator for a number-of-seconds argument whose message names the valid range: above
    0, finite, at most `most`. It runs before pydantic's own checks, which would name one bound
    at a time; the field's `gt`/`le` still put the range in the schema."""
    limit = f" and at most {most:g}" if most is not None else ""

    def check(value: Any) -> Any:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and not (math.isfinite(value) and 0 < value <= (most or math.inf)):
            raise PydanticCustomError(
                "seconds", f"Input should be a finite number of seconds above 0{limit}"
            )
        return value

    return BeforeValidator(check)


def resolve_session(ctx: Context, session_id: str | None) -> str:
    """The explicit `session_id`, or the caller's current session."""
    if session_id:
        return session_id
    return services(ctx).sessions.target(caller_key(ctx))


def schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as clients receive it, built once (`_schemas.output_schema`).

    Its `$defs` are inlined: FastMCP inlines `$ref`s on every tools/list for clients that cannot
    follow them; a schema without any costs it nothing (tools/list about 2x faster).
    """
    return output_schema(model)


def result(model: BaseModel, text: str | None = None) -> ToolResult:
    """A tool result with `structuredContent` and a readable text block (JSON when no text).

    Strings that cannot be sent (a file name that is not UTF-8) carry their unpaired surrogates
    escaped, as kernel output does."""
    data = sendable(model.model_dump(mode="json"))
    body = text if text is not None else json.dumps(data, indent=1, ensure_ascii=False)
    return ToolResult(
        content=[TextContent(type="text", text=escape_surrogates(body))], structured_content=data
    )


async def tell_client(ctx: Context, notes: Iterable[str]) -> None:
    """Send each note the server made about this call (a restart, a time or output limit, lost
    state) to the client as a `warning` log message, as the logging capability promises. It is
    sent only at or above the level the client asked for: `logging/setLevel` on a 2025-11-25
    session, the request's own `io.modelcontextprotocol/logLevel` on 2026-07-28 (none: nothing
    sent). The notes are in the result too, for clients that show no log messages, and for calls
    made over REST, which have no MCP session to send them to."""
    if ctx.request_context is None:
        return
    for note in notes:
        # The SDK marks its log call deprecated (2026-07-28 deprecates the logging capability)
        # and warns on every call; a warning filter set to "error" must not fail the tool.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await ctx.warning(escape_surrogates(note), logger_name=LOGGER_NAME)


def sendable(value: Any) -> Any:
    """A JSON value with the unpaired surrogates of its strings escaped."""
    return on_strings(value, escape_surrogates)


def domain_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our `ServerError`s into `ToolError`s inside the tool, so the model gets our message
    and the log no error traceback: the call log's INFO line says the call was refused and why
    (`middleware/timing.py`), and FastMCP's own "Error calling tool" line, which at INFO would
    read like a bug, goes to DEBUG. `server.py` wraps every tool in it when adding it; the
    `@tool` metadata and the signature carry over to the wrapper."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        listener = live_output()
        if listener is not None:
            listener.started()  # the arguments were valid: a REST event stream may begin
        try:
            return await fn(*args, **kwargs)
        except ServerError as exc:
            raise ToolError(str(exc), log_level=logging.DEBUG) from exc

    return wrapper


def progress_reporter(ctx: Context) -> Callable[[str], Awaitable[None]] | None:
    """Sends each message as a progress notification, when the client asked for progress (or
    to the REST event stream that made the call)."""
    listener = live_output()
    if listener is not None:
        return listener.progress
    rc = ctx.request_context
    if rc is None or not rc.meta or "progressToken" not in (rc.meta or {}):
        return None
    sent = itertools.count(1)

    async def report(message: str) -> None:
        await ctx.report_progress(next(sent), None, message)

    return report
