"""Introspection tools: code_completion, inspect_object, list_variables."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from fastmcp import Context
from fastmcp.tools import ToolResult, tool
from pydantic import Field

from python_mcp_server.runtime import services
from python_mcp_server.services import (
    CompletionResult,
    InspectionResult,
    VariableList,
)
from python_mcp_server.tools._common import (
    READ_ONLY,
    SessionArg,
    ToolFunction,
    resolve_session,
    result,
    schema,
)

CursorArg = Annotated[
    int | None,
    Field(description="Character offset into code; omit for its end."),
]


def _render_completion(res: CompletionResult) -> str:
    if not res.matches:
        return "No completions."
    lines = [f"{res.total} completions replacing characters {res.cursor_start}-{res.cursor_end}:"]
    for m in res.matches:
        kind = f" ({m.type})" if m.type else ""
        sig = m.signature if m.signature and m.type == "function" else ""
        lines.append(f"{m.text}{sig}{kind}")
    if res.truncated:
        lines.append(f"... only the first {len(res.matches)} are listed.")
    return "\n".join(lines)


def _render_inspection(res: InspectionResult) -> str:
    if not res.found:
        return res.message or "Nothing found."
    return res.text + ("\n... (cut)" if res.truncated else "")


def _render_variables(res: VariableList) -> str:
    if not res.variables:
        return f"Session {res.session_id!r} has no user variables."
    lines = []
    for v in res.variables:
        extra = []
        if v.shape is not None:
            extra.append(f"shape {tuple(v.shape)}")
        elif v.size is not None:
            extra.append(f"len {v.size}")
        if v.dtype:
            extra.append(f"dtype {v.dtype}")
        detail = f" [{', '.join(extra)}]" if extra else ""
        lines.append(f"{v.name}: {v.type}{detail} = {v.repr}")
    if res.message:
        lines.append(res.message)
    return "\n".join(lines)


@tool(annotations=READ_ONLY, output_schema=schema(CompletionResult))
async def code_completion(
    code: Annotated[str, Field(description="The code typed so far.")],
    ctx: Context,
    cursor_pos: CursorArg = None,
    session_id: SessionArg = None,
) -> ToolResult:
    """Complete code at a cursor from the live session's variables, e.g. code='df.gr' to find
    a DataFrame's methods. Returns matches with type and signature, and the range
    cursor_start..cursor_end of code they replace. Runs no code."""
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).introspection.complete(sid, code, cursor_pos)
    return result(res, _render_completion(res))


@tool(annotations=READ_ONLY, output_schema=schema(InspectionResult))
async def inspect_object(
    code: Annotated[str, Field(description="Code holding the name, e.g. 'np.linspace'.")],
    ctx: Context,
    cursor_pos: CursorArg = None,
    detail_level: Annotated[
        Literal[0, 1],
        Field(description="1 adds the source code."),
    ] = 0,
    session_id: SessionArg = None,
) -> ToolResult:
    """Show an object's signature, docstring, type and file from the live session, like
    `obj?` in IPython: check how to call something instead of guessing. found=false when the
    name does not exist. Runs no code."""
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).introspection.inspect(sid, code, cursor_pos, detail_level)
    return result(res, _render_inspection(res))


@tool(annotations=READ_ONLY, output_schema=schema(VariableList))
async def list_variables(ctx: Context, session_id: SessionArg = None) -> ToolResult:
    """List a session's variables: name, type, short repr, and length, or shape and dtype for
    arrays and DataFrames. Leaves out modules, '_' names and IPython's own; changes nothing."""
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).introspection.variables(sid)
    return result(res, _render_variables(res))


TOOLS: Final[tuple[ToolFunction, ...]] = (
    code_completion,
    inspect_object,
    list_variables,
)
