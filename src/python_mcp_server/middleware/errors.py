"""`DomainErrorMiddleware`: our `ServerError`s reach the model with their own message."""

from __future__ import annotations

import logging
from typing import Any

from fastmcp.exceptions import ResourceError, ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

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
