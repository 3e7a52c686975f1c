"""Execution tools: run_python_code, execute_python, interrupt_kernel, restart_kernel."""

from __future__ import annotations

import base64
import itertools
import mimetypes
from typing import Annotated, Final

from fastmcp import Context
from fastmcp.tools import ToolResult, tool
from mcp.types import ContentBlock, ImageContent, ResourceLink, TextContent
from pydantic import Field

from python_mcp_server.runtime import caller_key, live_output, services
from python_mcp_server.services import (
    MAX_TIMEOUT_S,
    ActionResult,
    ExecutionResult,
    RestartResult,
)
from python_mcp_server.text import escape_surrogates
from python_mcp_server.tools._common import (
    CHANGES_STATE,
    DESTRUCTIVE,
    RUNS_CODE,
    SessionArg,
    ToolFunction,
    progress_reporter,
    resolve_session,
    result,
    schema,
    seconds_check,
    sendable,
    tell_client,
)

HTML_INLINE_CHARS = 2000


def _render_displays(res: ExecutionResult) -> list[str]:
    """Readable lines for display data: plain text, markdown, JSON and plotly summaries in full
    (they are already bounded); HTML only when it is short and nothing plainer was shown."""
    plain = {d.output for d in res.displays if d.mime_type != "text/html"}
    parts = []
    for d in res.displays:
        more = f" (truncated; full: {', '.join(d.uris)})" if d.truncated else ""
        if d.mime_type != "text/html":
            parts.append(f"{d.mime_type}{more}:\n{d.content}")
        elif d.is_result or d.output in plain or len(d.content) > HTML_INLINE_CHARS:
            parts.append(f"text/html: {len(d.content)} characters, in the structured result{more}")
        else:
            parts.append(f"text/html{more}:\n{d.content}")
    return parts


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
    parts.extend(_render_displays(res))
    for n, image in enumerate(res.images, 1):
        size = f" {image.width}x{image.height}" if image.width else ""
        shown = (
            f", preview {image.preview_width}x{image.preview_height} {image.preview_mime_type} "
            "attached"
            if image.preview_mime_type
            else ""
        )
        parts.append(f"image {n}: {image.mime_type}{size}{shown}; full resolution: {image.uri}")
    for f in res.files:
        parts.append(f"file written: {f.path} ({f.size} bytes, {f.mime_type}) {f.uri}")
    for uri in res.output_files:
        parts.append(f"full output: {uri}")
    if res.error is not None:
        parts.append(
            "error:\n"
            + ("\n".join(res.error.traceback) or f"{res.error.ename}: {res.error.evalue}")
        )
    return "\n".join(parts)


def execution_content(res: ExecutionResult) -> list[ContentBlock]:
    """The result's content blocks: the readable text, each image preview, and a link to every
    file the run produced in its session folder."""
    text = escape_surrogates(render_execution(res))
    blocks: list[ContentBlock] = [TextContent(type="text", text=text)]
    links: list[tuple[str, str, str]] = []
    for image in res.images:
        if image.preview and image.preview_mime_type:
            blocks.append(
                ImageContent(
                    type="image",
                    data=base64.b64encode(image.preview).decode(),
                    mime_type=image.preview_mime_type,
                )
            )
        if image.uri:
            links.append((image.uri, image.mime_type, "Full-resolution image"))
    for d in res.displays:
        for uri in d.uris:
            mime = mimetypes.guess_type(uri)[0] or "application/octet-stream"
            links.append((uri, mime, f"Full {d.mime_type} display output"))
    for uri in res.output_files:
        links.append((uri, "text/plain", "Full text of an output that was too long to inline"))
    for uri, mime, description in links:
        blocks.append(
            ResourceLink(
                type="resource_link",
                uri=uri,
                name=uri.rsplit("/", 1)[-1],
                mime_type=mime,
                description=description,
            )
        )
    return blocks


def _wants_progress(ctx: Context) -> bool:
    rc = ctx.request_context
    return rc is not None and bool(rc.meta) and "progressToken" in (rc.meta or {})


CodeArg = Annotated[str, Field(description="Python source, as in a notebook cell.")]
TimeoutArg = Annotated[
    float | None,
    Field(
        gt=0,
        le=MAX_TIMEOUT_S,
        description="Seconds before the code is interrupted; omit for the server default (60 s "
        "unless configured).",
    ),
    seconds_check(MAX_TIMEOUT_S),
]


@tool(annotations=RUNS_CODE, output_schema=schema(ExecutionResult))
async def run_python_code(
    code: CodeArg,
    ctx: Context,
    session_id: SessionArg = None,
    timeout_s: TimeoutArg = None,
) -> ToolResult:
    """Run Python code in a persistent Jupyter kernel: variables, imports and files persist
    between calls in a session. Use it for any computation, data work or plotting.

    Returns stdout, stderr, the last expression's value (`result`), plots as image previews
    linked to full-size PNGs, rich `displays`, and the workspace `files` the code changed. Code
    that raises still returns, with status 'error' and the traceback; past the time limit it is
    interrupted (status 'timeout'; `message` says whether variables survived). Long output keeps
    head and tail, the full text linked in `output_files`.
    """
    on_progress = None
    if _wants_progress(ctx):
        sent = itertools.count(1)

        async def on_progress(message: str) -> None:
            await ctx.report_progress(next(sent), None, message)

    res = await services(ctx).execution.run(
        resolve_session(ctx, session_id),
        code,
        timeout_s,
        on_progress=on_progress,
        caller=caller_key(ctx),
        on_output=listener.output if (listener := live_output()) is not None else None,
    )
    await tell_client(ctx, res.notes)
    return ToolResult(
        content=execution_content(res), structured_content=sendable(res.model_dump(mode="json"))
    )


@tool(annotations=RUNS_CODE, output_schema=schema(ExecutionResult))
async def execute_python(
    code: CodeArg,
    ctx: Context,
    dependencies: Annotated[
        list[Annotated[str, Field(max_length=200)]] | None,
        Field(
            max_length=50,
            description="Packages the code needs, e.g. ['requests', 'pandas<2']: it runs in an "
            "environment holding them. Omit for the server's.",
        ),
    ] = None,
    timeout_s: TimeoutArg = None,
) -> ToolResult:
    """Run self-contained Python code once in a fresh kernel, discarded afterwards: nothing
    persists (for state, use run_python_code). Returns what run_python_code returns; its
    kernel:// links last a few minutes. Files it writes in the workspace stay.
    """
    listener = live_output()
    report = progress_reporter(ctx)
    res = await services(ctx).execution.run_once(
        code,
        dependencies,
        timeout_s,
        on_progress=report if listener is None else None,
        on_output=listener.output if listener is not None else None,
        on_setup=report,
    )
    await tell_client(ctx, res.notes)
    return ToolResult(
        content=execution_content(res), structured_content=sendable(res.model_dump(mode="json"))
    )


@tool(annotations=CHANGES_STATE, output_schema=schema(ActionResult))
async def interrupt_kernel(ctx: Context, session_id: SessionArg = None) -> ToolResult:
    """Interrupt a session's running code, like Ctrl-C; variables are kept. The interrupted
    call returns a KeyboardInterrupt error. Harmless when the kernel is idle."""
    sid = resolve_session(ctx, session_id)
    busy = await (await services(ctx).sessions.lookup(sid)).interrupt()
    msg = (
        "Interrupt sent to the running code."
        if busy
        else "The kernel was idle; nothing to interrupt."
    )
    return result(ActionResult(session_id=sid, message=msg))


@tool(annotations=DESTRUCTIVE, output_schema=schema(RestartResult))
async def restart_kernel(
    ctx: Context,
    session_id: SessionArg = None,
    preserve_state: Annotated[
        bool,
        Field(
            description="Carry picklable variables over (modules must be imported again); "
            "the result lists what was restored."
        ),
    ] = False,
) -> ToolResult:
    """Restart a session's kernel: variables and imports are lost, running code is stopped,
    workspace files stay. Use it after upgrading an imported package or when the kernel is hung.
    """
    sid = resolve_session(ctx, session_id)
    session = await services(ctx).sessions.lookup(sid)
    outcome = await session.restart(preserve_state=preserve_state)
    res = outcome.result(sid, session.pid)
    return result(res, res.message)


TOOLS: Final[tuple[ToolFunction, ...]] = (
    run_python_code,
    execute_python,
    interrupt_kernel,
    restart_kernel,
)
