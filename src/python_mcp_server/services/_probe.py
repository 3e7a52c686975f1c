"""Look inside a session's kernel without leaving a trace in the user's session.

A probe is a function of the kernel-side package (`kernel_ext.PROBES`). It runs as a silent,
history-free execute request whose only work is one user expression, so it prints nothing into
the user's output, does not bump `execution_count` and does not touch `_`, `__`, `Out` or `In`.
It is handed the user's namespace and JSON arguments and returns a JSON-able value.
`probe_expression` and `probe_result` are pure: they build the request and read its reply.
"""

from __future__ import annotations

import ast
import json
import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from python_mcp_server.errors import KernelBusyError, KernelError
from python_mcp_server.kernels.messages import strip_ansi
from python_mcp_server.services._kernel_ext import probe_call
from python_mcp_server.services.session import KernelSession

logger = logging.getLogger(__name__)

# Waiting behind a running cell, and waiting for the probe's own reply.
BUSY_WAIT_S = 15.0
PROBE_TIMEOUT_S = 30.0

# The user expression's key in the execute request.
RESULT_KEY = "result"


def locked(
    session: KernelSession, wait_s: float = BUSY_WAIT_S
) -> AbstractAsyncContextManager[KernelSession]:
    """Hold the session's FIFO turn, waiting at most `wait_s` behind a running cell."""
    return session.turn(wait_s)


def probe_expression(function_name: str, args: Any = None) -> str:
    """The user expression that runs the kernel-side probe `function_name` with `args`."""
    return probe_call(function_name, args)


def probe_result(reply_content: dict[str, Any], session_id: str) -> Any:
    """The probe's value from its execute reply's content.

    Raises:
        KernelError: the probe failed in the kernel (for example a rebound builtin).
    """
    value = reply_content.get("user_expressions", {}).get(RESULT_KEY, {})
    if value.get("status") != "ok":
        logger.warning(
            "probe failed in session %s: %s",
            session_id,
            strip_ansi("".join(value.get("traceback", [])))[-2000:],
        )
        raise KernelError(
            f"Could not look inside session {session_id!r}: {value.get('ename')}: "
            f"{value.get('evalue')}. If your code rebound a builtin such as exec, globals or "
            "__import__, delete that name (del exec) and try again."
        )
    text = value.get("data", {}).get("text/plain", "")
    return json.loads(ast.literal_eval(text))


def probe_timeout_error(session_id: str, timeout_s: float) -> KernelBusyError:
    """The error for a probe that was interrupted after `timeout_s`."""
    return KernelBusyError(
        f"Looking inside session {session_id!r} took longer than {timeout_s:g} s and "
        "was interrupted; an object's __repr__ or __len__ may be very slow. Your variables "
        "are unchanged."
    )


async def evaluate(
    session: KernelSession,
    function_name: str,
    args: Any = None,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> Any:
    """Run the kernel-side probe `function_name` in the session's kernel and return its value.

    The caller must hold the session's turn.
    """
    expression = probe_expression(function_name, args)
    try:
        reply = await session.evaluate({RESULT_KEY: expression}, timeout_s)
    except TimeoutError:
        raise probe_timeout_error(session.session_id, timeout_s) from None
    return probe_result(reply.content, session.session_id)
