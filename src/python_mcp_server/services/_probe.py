"""Look inside a session's kernel without leaving a trace in the user's session.

A probe is a small self-contained Python program. It runs as a silent, history-free execute
request whose only work is one user expression, so it prints nothing into the user's output,
does not bump `execution_count` and does not touch `_`, `__`, `Out` or `In`. The program runs in
a fresh namespace of its own; it sees the user's namespace as `user_ns` and its arguments as
`args`, and leaves a JSON-able value in `result`.
"""

from __future__ import annotations

import ast
import json
import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from python_mcp_server.errors import KernelBusyError, KernelError
from python_mcp_server.kernels.messages import strip_ansi
from python_mcp_server.services.session import KernelSession

logger = logging.getLogger(__name__)

# Waiting behind a running cell, and waiting for the probe's own reply.
BUSY_WAIT_S = 15.0
PROBE_TIMEOUT_S = 30.0

_EXPRESSION = (
    "__import__('json').dumps((lambda g: (exec({source!r}, g), g['result'])[1])"
    "({{'args': __import__('json').loads({args!r}), 'user_ns': globals()}}), "
    "ensure_ascii=True, default=str)"
)


def locked(
    session: KernelSession, wait_s: float = BUSY_WAIT_S
) -> AbstractAsyncContextManager[KernelSession]:
    """Hold the session's FIFO turn, waiting at most `wait_s` behind a running cell."""
    return session.turn(wait_s)


async def evaluate(
    session: KernelSession, source: str, args: Any = None, timeout_s: float = PROBE_TIMEOUT_S
) -> Any:
    """Run a probe program in the session's kernel and return its `result`.

    The caller must hold the session's turn.
    """
    expression = _EXPRESSION.format(source=source, args=json.dumps(args))
    try:
        reply = await session.evaluate({"result": expression}, timeout_s)
    except TimeoutError:
        raise KernelBusyError(
            f"Looking inside session {session.session_id!r} took longer than {timeout_s:g} s and "
            "was interrupted; an object's __repr__ or __len__ may be very slow. Your variables "
            "are unchanged."
        ) from None
    value = reply.content.get("user_expressions", {}).get("result", {})
    if value.get("status") != "ok":
        logger.warning(
            "probe failed in session %s: %s",
            session.session_id,
            strip_ansi("".join(value.get("traceback", [])))[-2000:],
        )
        raise KernelError(
            f"Could not look inside session {session.session_id!r}: {value.get('ename')}: "
            f"{value.get('evalue')}. If your code rebound a builtin such as exec, globals or "
            "__import__, delete that name (del exec) and try again."
        )
    text = value.get("data", {}).get("text/plain", "")
    return json.loads(ast.literal_eval(text))
