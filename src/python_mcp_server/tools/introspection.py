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
    Field(
        description="Cursor offset in characters into `code` (0 to len(code)). Omit it for "
        "the end of the code."
    ),
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
    """Suggest completions at a cursor position, using the live session's variables.

    Use it to discover attribute, method, module or keyword names (for example
    code='df.gr' after creating a DataFrame df). Returns the matches, with their type and
    signature where the kernel knows them, and the range cursor_start..cursor_end of `code`
    that a match replaces. Runs no code and leaves the session unchanged.
    """
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).introspection.complete(sid, code, cursor_pos)
    return result(res, _render_completion(res))


@tool(annotations=READ_ONLY, output_schema=schema(InspectionResult))
async def inspect_object(
    code: Annotated[
        str, Field(description="Code containing the name to inspect, e.g. 'np.linspace'.")
    ],
    ctx: Context,
    cursor_pos: CursorArg = None,
    detail_level: Annotated[
        Literal[0, 1],
        Field(description="0: signature and docstring; 1: also the source code."),
    ] = 0,
    session_id: SessionArg = None,
) -> ToolResult:
    """Show the signature, docstring, type and file of an object in the live session.

    Use it to check how to call a function or what an object is, instead of guessing
    (like `obj?` in IPython; detail_level=1 is `obj??` and adds the source). The name at the
    cursor is looked up among the session's variables and imports. Returns found=false when
    nothing by that name exists. Plain text, no terminal colour codes. Runs no code and leaves
    the session unchanged.
    """
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).introspection.inspect(sid, code, cursor_pos, detail_level)
    return result(res, _render_inspection(res))


@tool(annotations=READ_ONLY, output_schema=schema(VariableList))
async def list_variables(ctx: Context, session_id: SessionArg = None) -> ToolResult:
    """List the variables defined in a session: name, type, a short repr, and size or shape.

    Use it to recall what exists in the kernel before writing more code. Containers give
    their length; arrays, DataFrames and Series their shape and dtype; functions and classes
    their signature. Modules, names starting with '_' and IPython's own names (In, Out, ...)
    are left out. Long lists are cut (see `truncated`). Leaves the session unchanged: nothing
    is printed, and the cell counter and `_` stay as they were.
    """
    sid = resolve_session(ctx, session_id)
    res = await services(ctx).introspection.variables(sid)
    return result(res, _render_variables(res))


TOOLS: Final[tuple[ToolFunction, ...]] = (
    code_completion,
    inspect_object,
    list_variables,
)
