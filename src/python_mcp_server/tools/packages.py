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
        Field(
            description="Requirements to install: package names with optional extras and "
            "version specifiers, e.g. ['requests', 'pandas>=2.0', 'httpx[http2]']. Options, "
            "URLs, paths and environment markers are refused."
        ),
    ],
    ctx: Context,
    session_id: SessionArg = None,
    upgrade: Annotated[
        bool,
        Field(description="Upgrade these packages if an older version is installed."),
    ] = False,
    timeout_s: Annotated[
        float | None,
        Field(
            gt=0,
            le=MAX_INSTALL_TIMEOUT_S,
            description="Stop the installer after this many seconds (above 0, at most an "
            "hour). Omit for the server default (300 s unless configured).",
        ),
        seconds_check(MAX_INSTALL_TIMEOUT_S),
    ] = None,
    allow_source_builds: Annotated[
        bool,
        Field(
            description="Allow building packages that have no wheel for this Python and "
            "platform from source, which runs their build code (in the installer's sandbox "
            "when kernels are sandboxed). Off: wheels only."
        ),
    ] = False,
) -> ToolResult:
    """Install Python packages from the package index into the session kernel's interpreter.

    Use it when an import fails with ModuleNotFoundError. Uses uv (or pip) for the exact
    interpreter the kernel runs, so new packages can be imported in the running session right
    away, without a restart. Installs wheels only unless allow_source_builds is true; with
    sandboxed kernels the installer runs in its own sandbox that reaches only the package
    index. Returns, per package, whether it was installed, upgraded or
    already satisfied and its version, or why it failed (for example a misspelt name);
    `restart_needed` is true when an upgraded module was already imported (then call
    restart_kernel).
    """
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).packages.install(
        sid, packages, upgrade, timeout_s, allow_source_builds, progress_reporter(ctx)
    )
    return result(res, _render_install(res))


@tool(annotations=READ_ONLY, output_schema=schema(PackageList))
async def list_installed_packages(ctx: Context, session_id: SessionArg = None) -> ToolResult:
    """List the packages (name and version) importable in a session's kernel interpreter.

    Use it to check whether a package is available, or which version, before importing or
    installing it. Reads the kernel's own environment, which may differ from the server's.
    """
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).packages.installed(sid)
    text = "\n".join(f"{p.name}=={p.version}" for p in res.packages)
    return result(res, f"{res.total} packages in {res.python}:\n{text}")


@tool(annotations=READ_ONLY, output_schema=schema(EnvironmentInfo))
async def get_environment_info(
    ctx: Context,
    session_id: Annotated[
        str | None,
        Field(
            description="Also describe this session's environment: its own (what it was "
            "created with, its layers) or the server's shared one."
        ),
    ] = None,
    include_lock: Annotated[
        bool,
        Field(
            description="With session_id: list every distribution it holds as name==version "
            "(`uv pip freeze` form), to recreate it with create_session(dependencies=...)."
        ),
    ] = False,
) -> ToolResult:
    """Describe the execution environment: Python, platform, CPU, memory, limits.

    Use it to learn which Python version and platform your code runs on, how much memory
    and how many CPUs are there, where the workspace is, and the limits in force (timeouts,
    session count, output and file size caps); `pythons` lists the versions create_session
    can give a session. Starts no kernel (unless session_id is 'default' before first use).
    """
    return result(await services(ctx).environment.info(session_id or None, include_lock))


TOOLS: Final[tuple[ToolFunction, ...]] = (
    install_dependencies,
    list_installed_packages,
    get_environment_info,
)
