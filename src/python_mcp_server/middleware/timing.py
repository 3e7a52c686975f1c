"""`TimingMiddleware`: one log line per tool call with its duration and outcome."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext

logger = logging.getLogger("python_mcp_server.calls")


class TimingMiddleware(Middleware):
    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        name = getattr(context.message, "name", "?")
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await call_next(context)
            outcome = "is_error" if getattr(response, "is_error", False) else "ok"
            data = getattr(response, "structured_content", None)
            status = data.get("status") if isinstance(data, dict) else None
            if outcome == "ok" and isinstance(status, str) and status != "ok":
                outcome = f"ok, status {status}"  # a cell that raised or timed out
            return response
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            logger.info("tool %s %s in %.1f ms", name, outcome, ms)
