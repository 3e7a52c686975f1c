"""`TimingMiddleware`: one log line per tool call with its duration and outcome (for a call the
server refused, such as a path outside the workspace or an unknown session, the reason)."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

from python_mcp_server.errors import ServerError

logger = logging.getLogger("python_mcp_server.calls")
_REASON_CHARS = 200


class TimingMiddleware(Middleware):
    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        name = getattr(context.message, "name", "?")
        started = time.perf_counter()
        outcome, reason = "error", ""
        try:
            response = await call_next(context)
            outcome = "is_error" if getattr(response, "is_error", False) else "ok"
            data = getattr(response, "structured_content", None)
            status = data.get("status") if isinstance(data, dict) else None
            if outcome == "ok" and isinstance(status, str) and status != "ok":
                outcome = f"ok, status {status}"  # a cell that raised or timed out
            return response
        except BaseException as exc:
            outcome, reason = _outcome(exc)
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            logger.info("tool %s %s in %.1f ms%s", name, outcome, ms, reason)


def _outcome(exc: BaseException) -> tuple[str, str]:
    """How a call that raised ended, and why: `refused` and ": <the first line of our message>"
    for an error of this server's (the caller's to fix), else the exception's type."""
    if isinstance(exc, ToolError) and isinstance(exc.__cause__, ServerError):
        reason = str(exc).split("\n", 1)[0]
        if len(reason) > _REASON_CHARS:
            reason = reason[: _REASON_CHARS - 3] + "..."
        return "refused", f": {reason}"
    return type(exc).__name__, ""
