"""Health tools: ping, get_kernel_health, check_kernel_responsiveness."""

from __future__ import annotations

import time
from typing import Annotated, Final

from fastmcp import Context
from fastmcp.tools import ToolResult, tool
from pydantic import BaseModel, Field

from python_mcp_server import __version__
from python_mcp_server.runtime import services
from python_mcp_server.services import HealthReport, Responsiveness
from python_mcp_server.tools._common import (
    READ_ONLY,
    SessionArg,
    ToolFunction,
    resolve_session,
    result,
    schema,
    seconds_check,
)


class PingResult(BaseModel):
    ok: bool
    server_version: str
    sessions: int
    server_time: float


def render_health(report: HealthReport) -> str:
    lines = []
    for k in report.kernels:
        line = f"{k.session_id}: {k.state}, pid {k.pid}"
        if k.rss_mb is not None:
            line += (
                f", {k.process_status}, {k.rss_mb} MB RSS, {k.cpu_percent}% CPU, "
                f"{k.threads} threads, {k.open_files} open files, {k.child_processes} child "
                f"processes, up {k.uptime_s:.0f} s"
            )
        if k.restarts:
            line += f"; {k.restarts} restart(s), last at {k.last_restart}: {k.last_restart_reason}"
        lines.append(line)
    if not report.kernels:
        lines.append("No live sessions.")
    h = report.host
    lines.append(
        f"host: {h.memory_available_mb} of {h.memory_total_mb} MB memory available (floor "
        f"{h.memory_floor_mb} MB), {h.cpu_count} CPUs; disk {h.disk_free_mb} of "
        f"{h.disk_total_mb} MB free at {h.disk_path}"
    )
    p = report.pool
    lines.append(f"warm pool: {p.ready} ready, {p.starting} starting (size {p.size})")
    return "\n".join(lines)


@tool(annotations=READ_ONLY, output_schema=schema(PingResult))
async def ping(ctx: Context) -> ToolResult:
    """Check that the server is up (it answers even while code runs): version and session
    count."""
    svc = services(ctx)
    return result(
        PingResult(
            ok=True,
            server_version=__version__,
            sessions=len(svc.sessions.ids()),
            server_time=time.time(),
        )
    )


@tool(annotations=READ_ONLY, output_schema=schema(HealthReport))
async def get_kernel_health(
    ctx: Context,
    session_id: Annotated[
        str | None,
        Field(description="Omit to report every session."),
    ] = None,
) -> ToolResult:
    """Report health when code is slow, memory may be short or a kernel seems stuck: each
    kernel's state, memory, CPU, threads, open files, children and restarts (when, why); the
    host's memory and disk; the warm pool."""
    report = await services(ctx).health.report(session_id)
    return result(report, render_health(report))


@tool(annotations=READ_ONLY, output_schema=schema(Responsiveness))
async def check_kernel_responsiveness(
    ctx: Context,
    session_id: SessionArg = None,
    timeout_s: Annotated[
        float,
        Field(gt=0, le=120, description="Seconds to wait for an answer."),
        seconds_check(120),
    ] = 5.0,
) -> ToolResult:
    """Check whether a session's kernel answers, even mid-cell, and how fast: the round trip
    and a verdict ('responsive', 'slow', 'unresponsive' or 'dead'), to choose between
    waiting, interrupt_kernel and restart_kernel."""
    res = await services(ctx).health.responsiveness(resolve_session(ctx, session_id), timeout_s)
    return result(res, f"[{res.verdict}] session {res.session_id!r}: {res.message}")


TOOLS: Final[tuple[ToolFunction, ...]] = (
    ping,
    get_kernel_health,
    check_kernel_responsiveness,
)
