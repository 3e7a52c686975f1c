"""File tools: list_files, read_file, write_file, delete_file, get_workspace_info, save_script,
run_script; and the `workspace://{path*}` resource."""

from __future__ import annotations

import logging
from typing import Annotated, Final, Literal

from fastmcp import Context
from fastmcp.exceptions import ResourceError
from fastmcp.resources import ResourceContent, ResourceResult, ResourceSecurity, resource
from fastmcp.tools import ToolResult, tool
from pydantic import Field

from python_mcp_server.errors import ServerError
from python_mcp_server.runtime import services
from python_mcp_server.services import (
    DeleteResult,
    FileContent,
    FileList,
    ScriptRun,
    WorkspaceInfo,
    WriteResult,
)
from python_mcp_server.tools._common import (
    DESTRUCTIVE,
    IDEMPOTENT_WRITE,
    READ_ONLY,
    RUNS_CODE,
    ToolFunction,
    result,
    schema,
    seconds_check,
)

PathArg = Annotated[
    str,
    Field(description="Relative to the workspace root, e.g. 'data/input.csv'."),
]


def render_read(res: FileContent) -> str:
    end = res.offset + res.bytes_returned
    head = f"{res.path}: bytes {res.offset}..{end} of {res.total_size}, {res.encoding}"
    parts = [head, res.content]
    if res.message:
        parts.append(f"note: {res.message}")
    return "\n".join(parts)


def render_run(res: ScriptRun) -> str:
    status = "timed out" if res.timed_out else f"exit code {res.exit_code}"
    parts = [f"[{status}] scripts/{res.name}, {res.duration_ms:.0f} ms"]
    if res.message:
        parts.append(f"note: {res.message}")
    if res.stdout:
        parts.append(f"stdout:\n{res.stdout.rstrip()}")
    if res.stderr:
        parts.append(f"stderr:\n{res.stderr.rstrip()}")
    return "\n".join(parts)


@tool(annotations=READ_ONLY, output_schema=schema(FileList))
async def list_files(
    ctx: Context,
    path: Annotated[str, Field(description="Folder, relative to the workspace root.")] = ".",
    pattern: Annotated[
        str | None,
        Field(description="Glob such as '*.csv' on names (on paths when it has a '/')."),
    ] = None,
    recursive: Annotated[bool, Field(description="Include subfolders.")] = False,
    max_entries: Annotated[
        int | None,
        Field(ge=1, description="Most entries to return (the server caps it)."),
    ] = None,
    offset: Annotated[
        int,
        Field(
            ge=0,
            description="Skip this many entries: the previous result's next_offset.",
        ),
    ] = 0,
) -> ToolResult:
    """List a workspace folder: entries with type, size and modified time (UTC), and a tree.
    Symlinks are shown, not followed; a cut listing gives next_offset."""
    res = await services(ctx).workspace.listing(path, pattern, recursive, max_entries, offset)
    text = res.tree + (f"\nnote: {res.message}" if res.message else "")
    return result(res, text)


@tool(annotations=READ_ONLY, output_schema=schema(FileContent))
async def read_file(
    path: PathArg,
    ctx: Context,
    offset: Annotated[int, Field(ge=0, description="Byte offset to start at.")] = 0,
    max_bytes: Annotated[
        int | None,
        Field(ge=1, description="Most bytes to return (the server caps it)."),
    ] = None,
) -> ToolResult:
    """Read a workspace file or a chunk of it: UTF-8 text, or base64 for binary (`encoding`
    says which). To read on, call again with offset=next_offset."""
    res = await services(ctx).workspace.read(path, offset, max_bytes)
    return result(res, render_read(res))


@tool(annotations=IDEMPOTENT_WRITE, output_schema=schema(WriteResult))
async def write_file(
    path: PathArg,
    content: Annotated[str, Field(description="Text, or base64 with encoding='base64'.")],
    ctx: Context,
    encoding: Annotated[
        Literal["text", "base64"],
        Field(description="How content is encoded."),
    ] = "text",
    overwrite: Annotated[bool, Field(description="Replace an existing file.")] = True,
    append: Annotated[
        bool,
        Field(description="Add to the end of the file (created if missing)."),
    ] = False,
) -> ToolResult:
    """Write a workspace file atomically, creating parent folders; the kernel's working
    directory is the workspace root. One request carries at most 4 MB: send bigger files in
    pieces of about 2 MB with append=true."""
    res = await services(ctx).workspace.write(path, content, encoding, overwrite, append)
    verb = "Appended to" if append and not res.created else "Created" if res.created else "Replaced"
    return result(res, f"{verb} {res.path} ({res.bytes_written} bytes), {res.uri}")


@tool(annotations=DESTRUCTIVE, output_schema=schema(DeleteResult))
async def delete_file(
    path: PathArg,
    ctx: Context,
    recursive: Annotated[
        bool, Field(description="Required to delete a folder and its contents.")
    ] = False,
) -> ToolResult:
    """Delete a workspace file, a link (not its target), or a folder with recursive=true."""
    res = await services(ctx).workspace.delete(path, recursive)
    return result(res, res.message)


@tool(annotations=READ_ONLY, output_schema=schema(WorkspaceInfo))
async def get_workspace_info(ctx: Context) -> ToolResult:
    """Describe the workspace: root folder, bytes used, file and folder counts, top-level
    folders and the file size limits."""
    return result(await services(ctx).workspace.info())


@tool(annotations=IDEMPOTENT_WRITE, output_schema=schema(WriteResult))
async def save_script(
    name: Annotated[
        str,
        Field(description="File name such as 'clean_data' ('.py' optional)."),
    ],
    code: Annotated[str, Field(description="The script's Python source.")],
    ctx: Context,
) -> ToolResult:
    """Save a Python script as scripts/<name>.py (replacing one of that name), to run with
    run_script."""
    res = await services(ctx).scripts.save(name, code)
    name_only = res.path.rsplit("/", 1)[-1]
    return result(
        res,
        f"Saved {res.path} ({res.bytes_written} bytes). Run it with run_script('{name_only}').",
    )


@tool(annotations=RUNS_CODE, output_schema=schema(ScriptRun))
async def run_script(
    name: Annotated[str, Field(description="Its name in scripts/ ('.py' optional).")],
    ctx: Context,
    args: Annotated[
        list[str] | None,
        Field(description="Command-line arguments (argv, no shell)."),
    ] = None,
    timeout_s: Annotated[
        float | None,
        Field(
            gt=0,
            description="Seconds before it is killed (the server caps it).",
        ),
        seconds_check(),
    ] = None,
) -> ToolResult:
    """Run a saved script in a new Python process, apart from any session's state (working
    directory the workspace root, stdin closed). Returns stdout, stderr, exit code and
    duration; on timeout it and its children are killed."""
    res = await services(ctx).scripts.run(name, args, timeout_s)
    return result(res, render_run(res))


@resource(
    "workspace://{path*}",
    name="workspace_file",
    description="Any file in the workspace, by its path relative to the root: text files "
    "as text, other files as a blob with their mime type.",
    security=ResourceSecurity(exempt_params={"path"}),
)
async def workspace_file(path: str, ctx: Context) -> ResourceResult:
    # FastMCP's own parameter screening is lifted so that resolve_inside, the one
    # confinement check, decides and its message reaches the client.
    try:
        content, mime = await services(ctx).workspace.read_resource(path)
    except ServerError as exc:
        # FastMCP logs resource errors with a traceback; a wrong URI is not worth one
        raise ResourceError(str(exc), log_level=logging.DEBUG) from exc
    return ResourceResult([ResourceContent(content, mime_type=mime)])


TOOLS: Final[tuple[ToolFunction, ...]] = (
    list_files,
    read_file,
    write_file,
    delete_file,
    get_workspace_info,
    save_script,
    run_script,
)


RESOURCES: Final[tuple[ToolFunction, ...]] = (workspace_file,)
