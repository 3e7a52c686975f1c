"""Execution tools: run_python_code, interrupt_kernel, restart_kernel."""

from __future__ import annotations

from typing import Annotated

from fastmcp import Context, FastMCP
from fastmcp.tools import ToolResult
from pydantic import Field

from python_mcp_server.runtime import services
from python_mcp_server.services.models import ActionResult, ExecutionResult, RestartResult
from python_mcp_server.tools._common import (
    CHANGES_STATE,
    DESTRUCTIVE,
    RUNS_CODE,
    SessionArg,
    domain_errors,
    resolve_session,
    result,
    schema,
)


def render_execution(res: ExecutionResult) -> str:
    """The readable text block of a run: status line, then each non-empty part."""
    head = f"[{res.status}] session {res.session_id!r}"
    if res.execution_count is not None:
        head += f", cell {res.execution_count}"
    head += f", {res.duration_ms:.0f} ms"
    parts = [head]
    if res.message:
        parts.append(f"note: {res.message}")
    if res.stdout:
        parts.append(f"stdout:\n{res.stdout.rstrip()}")
    if res.stderr:
        parts.append(f"stderr:\n{res.stderr.rstrip()}")
    if res.result is not None:
        parts.append(f"result:\n{res.result}")
    for display in res.displays:
        parts.append(f"{display.mime_type}:\n{display.content}")
    for image in res.images:
        parts.append(f"image: {image.mime_type} {image.width}x{image.height} {image.uri or ''}")
    for f in res.files:
        parts.append(f"file: {f.path} ({f.size} bytes) {f.uri}")
    if res.error is not None:
        parts.append(
            "error:\n"
            + ("\n".join(res.error.traceback) or f"{res.error.ename}: {res.error.evalue}")
        )
    return "\n".join(parts)


def register(mcp: FastMCP) -> None:
    @mcp.tool(annotations=RUNS_CODE, output_schema=schema(ExecutionResult))
    @domain_errors
    async def run_python_code(
        code: Annotated[str, Field(description="Python source to run, as in a notebook cell.")],
        ctx: Context,
        session_id: SessionArg = None,
        timeout_s: Annotated[
            float | None,
            Field(
                gt=0,
                description="Stop the code after this many seconds. Omit for the "
                "server default (60 s unless configured).",
            ),
        ] = None,
    ) -> ToolResult:
        """Run Python code in a persistent Jupyter kernel and return what it printed and returned.

        Use it for any computation, data work or plotting. Variables, imports and files persist
        between calls in the same session. The last expression's value comes back as `result`.
        If the code raises, the call still succeeds with status 'error' and the traceback. If it
        runs past the time limit it is interrupted (status 'timeout'); `message` says whether the
        variables survived. Code is never run twice.
        """
        res = await services(ctx).execution.run(resolve_session(ctx, session_id), code, timeout_s)
        return result(res, render_execution(res))

    @mcp.tool(annotations=CHANGES_STATE, output_schema=schema(ActionResult))
    @domain_errors
    async def interrupt_kernel(ctx: Context, session_id: SessionArg = None) -> ToolResult:
        """Interrupt the code running in a session, like Ctrl-C. Variables are kept.

        Use it when a cell started by another call is stuck or taking too long. The interrupted
        call returns with a KeyboardInterrupt error. Does nothing harmful when the kernel is idle.
        """
        sid = resolve_session(ctx, session_id)
        session = services(ctx).sessions.get(sid)
        busy = session.running
        await session.handle.interrupt()
        msg = (
            "Interrupt sent to the running code."
            if busy
            else "The kernel was idle; nothing to interrupt."
        )
        return result(ActionResult(session_id=sid, message=msg))

    @mcp.tool(annotations=DESTRUCTIVE, output_schema=schema(RestartResult))
    @domain_errors
    async def restart_kernel(
        ctx: Context,
        session_id: SessionArg = None,
        preserve_state: Annotated[
            bool,
            Field(
                description="Carry the picklable variables over into the new kernel (modules "
                "must be imported again); the result lists what was restored and what was not."
            ),
        ] = False,
    ) -> ToolResult:
        """Restart a session's kernel with a clean state: all variables and imports are lost.

        Use it after installing a package that needs a fresh interpreter, or when the kernel is
        hung or broken. Files in the workspace are kept. Code running in the session is stopped.
        With preserve_state=true, picklable variables are restored in the new kernel.
        """
        sid = resolve_session(ctx, session_id)
        svc = services(ctx)
        session = svc.sessions.get(sid)
        outcome = await svc.sessions.restart(session, preserve_state=preserve_state)
        res = outcome.result(sid, session.handle.pid)
        return result(res, res.message)
