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
        Field(
            description="A name for the session (letters, digits, '_', '-', '.'). Omit it "
            "to get an unguessable generated id."
        ),
    ] = None,
    description: Annotated[
        str | None,
        Field(max_length=500, description="What this session is for, shown by list_sessions."),
    ] = None,
    memory_mb: Annotated[
        int | None, Field(gt=0, description="Lower the memory limit for this session (MB).")
    ] = None,
    max_processes: Annotated[
        int | None, Field(gt=0, description="Lower the process limit for this session.")
    ] = None,
    cpus: Annotated[
        float | None, Field(gt=0, description="A CPU quota for this session, in CPUs.")
    ] = None,
    dependencies: Annotated[
        list[str] | None,
        Field(
            max_length=50,
            description="Give the session an environment of its own holding these packages "
            "(names with optional extras and version specifiers, e.g. ['pandas<2', "
            "'scikit-learn==1.4.2']); [] for one with nothing extra. Its installs then stay in "
            "it. Omit it to use the server's shared environment.",
        ),
    ] = None,
    python: Annotated[
        str | None,
        Field(
            max_length=20,
            description="The Python version for the session's own environment, e.g. '3.12' "
            "(get_environment_info lists what this server has). Omit it for the server's.",
        ),
    ] = None,
) -> ToolResult:
    """Start a new, isolated Python kernel session and return its id.

    Use a separate session per task or agent so variables do not collide. Pass the returned
    `session_id` to run_python_code and the other tools. Refused if the name is taken or the
    server's session limit is reached. Limits may only be lowered below the server's.
    With `dependencies` (or `python`) the session gets an environment of its own, built by uv
    from its cache (about a second when the packages are cached; shared with sessions that ask
    for the same); other sessions are unaffected by what it installs.
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
    """Make a session the default for your later calls that omit session_id.

    Only your own connection is affected; other clients keep their own current session.
    On stateless connections the server cannot remember the choice: pass session_id to
    each call instead (the result says which case applies).
    """
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
    """List the live sessions: id, description, times, cell count, state and kernel pid.

    Use it to find a session id or to see which sessions are busy.
    """
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
    """Shut a session's kernel down and forget the session; its variables are lost.

    Use it when a task is done, to free memory and a session slot. Workspace files stay; the
    session's outputs (the files behind its kernel:// links) are deleted with it.
    """
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
