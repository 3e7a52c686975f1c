"""Package and environment tools: install_dependencies, list_installed_packages,
get_environment_info."""

from __future__ import annotations

from typing import Annotated, Final

from fastmcp import Context
from fastmcp.tools import ToolResult, tool
from mcp.types import ToolAnnotations
from pydantic import Field

from python_mcp_server.runtime import services
from python_mcp_server.services import (
    MAX_INSTALL_TIMEOUT_S,
    EnvironmentInfo,
    InstallResult,
    PackageList,
)
from python_mcp_server.tools._common import (
    READ_ONLY,
    SessionArg,
    ToolFunction,
    progress_reporter,
    resolve_session,
    result,
    schema,
    seconds_check,
)

INSTALLS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


def _render_install(res: InstallResult) -> str:
    where = "sandboxed" if res.sandboxed else "not sandboxed"
    lines = [f"[{res.status}] {res.installer} ({where}), {res.duration_ms:.0f} ms"]
    for p in res.packages:
        line = f"{p.requirement}: {p.status.replace('_', ' ')}"
        if p.version:
            line += f" (installed now: {p.version})" if p.status == "failed" else f" {p.version}"
        if p.previous_version:
            line += f" (was {p.previous_version})"
        if p.reason:
            line += f": {p.reason}"
        lines.append(line)
    if res.other_changes:
        lines.append("also: " + "; ".join(res.other_changes))
    if res.message:
        lines.append(res.message)
    if res.status != "ok" and res.output_tail:
        lines.append("installer output (end):\n" + res.output_tail[-1500:])
    return "\n".join(lines)


@tool(annotations=INSTALLS, output_schema=schema(InstallResult))
async def install_dependencies(
    packages: Annotated[
        list[str],
        Field(description="Requirements, e.g. ['requests', 'pandas>=2.0', 'httpx[http2]']."),
    ],
    ctx: Context,
    session_id: SessionArg = None,
    upgrade: Annotated[
        bool,
        Field(description="Upgrade them if already installed."),
    ] = False,
    timeout_s: Annotated[
        float | None,
        Field(
            gt=0,
            le=MAX_INSTALL_TIMEOUT_S,
            description="Seconds before the installer is stopped; omit for the server default "
            "(300 s unless configured).",
        ),
        seconds_check(MAX_INSTALL_TIMEOUT_S),
    ] = None,
    allow_source_builds: Annotated[
        bool,
        Field(
            description="Build packages without a wheel from source, running their build "
            "code. Off: wheels only."
        ),
    ] = False,
) -> ToolResult:
    """Install packages into a session kernel's interpreter (uv or pip) when an import fails;
    they import at once, without a restart. They go into the session's own environment if it
    has one, else into the server's, shared by sessions without one. Returns each package's outcome
    and version, or why it failed; restart_needed means an upgraded module was already
    imported: call restart_kernel."""
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).packages.install(
        sid, packages, upgrade, timeout_s, allow_source_builds, progress_reporter(ctx)
    )
    return result(res, _render_install(res))


@tool(annotations=READ_ONLY, output_schema=schema(PackageList))
async def list_installed_packages(ctx: Context, session_id: SessionArg = None) -> ToolResult:
    """List the packages (name, version) a session's kernel can import: its environment may
    differ from the server's."""
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).packages.installed(sid)
    text = "\n".join(f"{p.name}=={p.version}" for p in res.packages)
    return result(res, f"{res.total} packages in {res.python}:\n{text}")


@tool(annotations=READ_ONLY, output_schema=schema(EnvironmentInfo))
async def get_environment_info(
    ctx: Context,
    session_id: Annotated[
        str | None,
        Field(description="Also describe this session's environment."),
    ] = None,
    include_lock: Annotated[
        bool,
        Field(
            description="With session_id: every distribution as name==version, to recreate "
            "it with create_session(dependencies=...)."
        ),
    ] = False,
) -> ToolResult:
    """Describe where code runs: Python, platform, CPUs, memory, workspace, the limits in
    force (timeouts, sessions, output and file caps) and the `pythons` create_session offers.
    Starts no kernel."""
    return result(await services(ctx).environment.info(session_id or None, include_lock))


TOOLS: Final[tuple[ToolFunction, ...]] = (
    install_dependencies,
    list_installed_packages,
    get_environment_info,
)
