"""`DomainErrorMiddleware`: our `ServerError`s reach the model with their own message."""

from __future__ import annotations

import logging
from typing import Any

from fastmcp.exceptions import ResourceError, ToolError, ValidationError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from pydantic import ValidationError as PydanticValidationError

from python_mcp_server.errors import ServerError

logger = logging.getLogger(__name__)


class DomainErrorMiddleware(Middleware):
    """Add it first (outermost). Bugs stay masked by FastMCP and are logged with a traceback."""

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        try:
            return await call_next(context)
        except ServerError as exc:
            raise ToolError(str(exc)) from exc
        except ValidationError as exc:
            cause = exc.__cause__
            if not isinstance(cause, PydanticValidationError):
                raise
            name = getattr(context.message, "name", "?")
            raise ToolError(invalid_arguments(name, cause)) from exc
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ServerError):
                raise ToolError(str(cause)) from cause
            if cause is not None and not isinstance(cause, ToolError):
                name = getattr(context.message, "name", "?")
                logger.error("tool %s failed", name, exc_info=cause)
            raise

    async def on_read_resource(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        try:
            return await call_next(context)
        except ServerError as exc:
            raise ResourceError(str(exc)) from exc
        except ResourceError as exc:
            if isinstance(exc.__cause__, ServerError):
                raise ResourceError(str(exc.__cause__)) from exc.__cause__
            raise


def invalid_arguments(tool: str, exc: PydanticValidationError) -> str:
    """Pydantic's argument errors as one short line per argument, for the model."""
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err.get("loc", ())) or "arguments"
        shown = repr(err.get("input"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        got = "" if str(err.get("type", "")).startswith("missing") else f" (got {shown})"
        problems.append(f"{where}: {err.get('msg', 'invalid')}{got}")
    return (
        f"Invalid arguments for {tool}: " + "; ".join(problems) + ". The tool's input schema "
        "lists each argument with its type and limits."
    )
