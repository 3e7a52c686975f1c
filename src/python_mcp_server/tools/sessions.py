"""Session tools: create_session, switch_session, list_sessions, delete_session."""

from __future__ import annotations

from typing import Annotated, Final

from fastmcp import Context
from fastmcp.tools import ToolResult, tool
from pydantic import BaseModel, Field

from python_mcp_server.runtime import caller_key, services
from python_mcp_server.services import DEFAULT_SESSION, ActionResult, SessionInfo, SessionList
from python_mcp_server.tools._common import (
    CHANGES_STATE,
    DESTRUCTIVE,
    READ_ONLY,
    SessionArg,
    ToolFunction,
    progress_reporter,
    resolve_session,
    result,
    schema,
)


class SwitchResult(BaseModel):
    session_id: str
    applied: bool = Field(
        description="True when later calls from this client without session_id go to this "
        "session; False on stateless connections, where you must pass session_id explicitly."
    )
    message: str


@tool(annotations=CHANGES_STATE, output_schema=schema(SessionInfo))
async def create_session(
    ctx: Context,
    session_id: Annotated[
        str | None,
        Field(description="A name (letters, digits, '_', '-', '.'); omit for a generated id."),
    ] = None,
    description: Annotated[
        str | None,
        Field(max_length=500, description="What it is for, shown by list_sessions."),
    ] = None,
    memory_mb: Annotated[int | None, Field(gt=0, description="Memory limit in MB.")] = None,
    max_processes: Annotated[int | None, Field(gt=0, description="Process limit.")] = None,
    cpus: Annotated[float | None, Field(gt=0, description="CPU quota, in CPUs.")] = None,
    dependencies: Annotated[
        list[str] | None,
        Field(
            max_length=50,
            description="Packages for an environment of its own, e.g. ['pandas<2']; [] for "
            "nothing extra. Omit to share the server's.",
        ),
    ] = None,
    python: Annotated[
        str | None,
        Field(
            max_length=20,
            description="Python version for an environment of its own, e.g. '3.12' (see "
            "get_environment_info's pythons).",
        ),
    ] = None,
) -> ToolResult:
    """Start a new isolated kernel session and return its id, to pass as session_id. Use one
    per task so variables do not collide. Limits can only be lowered below the server's. With
    dependencies or python it gets its own environment (built from uv's cache, about a second),
    where its installs stay.
    """
    session = await services(ctx).sessions.create(
        session_id,
        description,
        memory_mb=memory_mb,
        max_processes=max_processes,
        cpus=cpus,
        dependencies=dependencies,
        python=python,
        progress=progress_reporter(ctx),
    )
    return result(session.info())


@tool(annotations=CHANGES_STATE, output_schema=schema(SwitchResult))
async def switch_session(
    session_id: Annotated[str, Field(description="The session to make current.")],
    ctx: Context,
) -> ToolResult:
    """Make a session current for your later calls without session_id (your connection only).
    On stateless connections `applied` is false: pass session_id instead."""
    sessions = services(ctx).sessions
    await sessions.lookup(session_id)
    caller = caller_key(ctx)
    if caller is None:
        return result(
            SwitchResult(
                session_id=session_id,
                applied=False,
                message="This connection is stateless (MCP 2026-07-28), so the server cannot "
                "remember a current session for you. Pass session_id="
                + repr(session_id)
                + " to each call.",
            )
        )
    sessions.set_target(caller, session_id)
    return result(
        SwitchResult(
            session_id=session_id,
            applied=True,
            message=f"Calls from this connection without session_id now use {session_id!r}.",
        )
    )


@tool(annotations=READ_ONLY, output_schema=schema(SessionList))
async def list_sessions(ctx: Context) -> ToolResult:
    """List the live sessions: id, description, times, cell count, state and kernel pid."""
    svc = services(ctx)
    await svc.sessions.refresh()
    return result(
        SessionList(
            sessions=[s.info() for s in svc.sessions.sessions()],
            max_sessions=svc.config.max_sessions,
            current_session=svc.sessions.target(caller_key(ctx)),
        )
    )


@tool(annotations=DESTRUCTIVE, output_schema=schema(ActionResult))
async def delete_session(ctx: Context, session_id: SessionArg = None) -> ToolResult:
    """End a session when its task is done: its kernel, variables and kernel:// files go;
    workspace files stay."""
    sid = resolve_session(ctx, session_id)
    was_current = await services(ctx).sessions.delete(sid, caller_key(ctx))
    message = f"Session {sid!r} was shut down."
    if was_current and sid != DEFAULT_SESSION:
        message += (
            " It was your current session: calls without session_id go to "
            f"{DEFAULT_SESSION!r} again."
        )
    return result(ActionResult(session_id=sid, message=message))


TOOLS: Final[tuple[ToolFunction, ...]] = (
    create_session,
    switch_session,
    list_sessions,
    delete_session,
)
