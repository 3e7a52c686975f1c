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
    Field(
        description="A path relative to the workspace root, e.g. 'data/input.csv'. Paths that "
        "leave the workspace ('..', absolute paths elsewhere, outward symlinks) are refused."
    ),
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
    path: Annotated[
        str, Field(description="The folder to list, relative to the workspace root.")
    ] = ".",
    pattern: Annotated[
        str | None,
        Field(
            description="A glob such as '*.csv' matched against entry names (or against "
            "the whole relative path when it contains '/'). Omit it to list everything."
        ),
    ] = None,
    recursive: Annotated[
        bool, Field(description="Also list the contents of subfolders, depth first.")
    ] = False,
    max_entries: Annotated[
        int | None,
        Field(ge=1, description="Most entries to return; the server limit applies on top."),
    ] = None,
    offset: Annotated[
        int,
        Field(
            ge=0,
            description="Skip this many matching entries: pass the previous result's "
            "next_offset to page through a large folder.",
        ),
    ] = 0,
) -> ToolResult:
    """List the files and folders in a workspace folder.

    Use it to see what exists before reading, writing or running something. Returns entries
    with type, size and modification time (UTC), plus an indented tree; `truncated` and
    `message` say when the listing was cut. Symlinks are shown but not followed.
    """
    res = await services(ctx).workspace.listing(path, pattern, recursive, max_entries, offset)
    text = res.tree + (f"\nnote: {res.message}" if res.message else "")
    return result(res, text)


@tool(annotations=READ_ONLY, output_schema=schema(FileContent))
async def read_file(
    path: PathArg,
    ctx: Context,
    offset: Annotated[int, Field(ge=0, description="Byte offset to start reading at.")] = 0,
    max_bytes: Annotated[
        int | None,
        Field(ge=1, description="Most bytes to return; the server limit applies on top."),
    ] = None,
) -> ToolResult:
    """Read a workspace file, or one chunk of it.

    Text files come back as UTF-8 text; binary files as base64 (`encoding` says which).
    Returns the total size and whether the chunk was truncated; to read on, call again with
    `offset` set to `next_offset`.
    """
    res = await services(ctx).workspace.read(path, offset, max_bytes)
    return result(res, render_read(res))


@tool(annotations=IDEMPOTENT_WRITE, output_schema=schema(WriteResult))
async def write_file(
    path: PathArg,
    content: Annotated[
        str, Field(description="The file content: text, or base64 for binary data.")
    ],
    ctx: Context,
    encoding: Annotated[
        Literal["text", "base64"],
        Field(description="'text' writes content as UTF-8; 'base64' decodes it to bytes."),
    ] = "text",
    overwrite: Annotated[
        bool, Field(description="Replace an existing file; false refuses instead.")
    ] = True,
    append: Annotated[
        bool,
        Field(
            description="Add content to the end of the file (created if missing) instead of "
            "replacing it: send a large file in pieces of at most about 2 MB each."
        ),
    ] = False,
) -> ToolResult:
    """Create or replace a workspace file; missing parent folders are created.

    Use it to put data or code where the kernel can read it (the kernel's working directory
    is the workspace root). The write is atomic: readers see the old or the new file, never
    half of one. One request carries at most 4 MB, so send bigger files in pieces with
    append=true. Returns the size written and whether the file is new.
    """
    res = await services(ctx).workspace.write(path, content, encoding, overwrite, append)
    verb = "Appended to" if append and not res.created else "Created" if res.created else "Replaced"
    return result(res, f"{verb} {res.path} ({res.bytes_written} bytes), {res.uri}")


@tool(annotations=DESTRUCTIVE, output_schema=schema(DeleteResult))
async def delete_file(
    path: PathArg,
    ctx: Context,
    recursive: Annotated[
        bool, Field(description="Required to delete a folder and everything in it.")
    ] = False,
) -> ToolResult:
    """Delete a workspace file, a link, or (with recursive=true) a folder and its contents.

    The workspace root itself cannot be deleted. Deleting a link removes the link only.
    Returns what was deleted.
    """
    res = await services(ctx).workspace.delete(path, recursive)
    return result(res, res.message)


@tool(annotations=READ_ONLY, output_schema=schema(WorkspaceInfo))
async def get_workspace_info(ctx: Context) -> ToolResult:
    """Describe the workspace: its root folder, bytes used, file and folder counts, the
    folders under the root, and the file size limits in force.

    Use it to orient yourself before working with files.
    """
    return result(await services(ctx).workspace.info())


@tool(annotations=IDEMPOTENT_WRITE, output_schema=schema(WriteResult))
async def save_script(
    name: Annotated[
        str,
        Field(description="A plain file name such as 'clean_data'; '.py' is added if missing."),
    ],
    code: Annotated[str, Field(description="The Python source of the script.")],
    ctx: Context,
) -> ToolResult:
    """Save a Python script into the workspace's scripts/ folder, replacing one of that name.

    Use it with run_script to run code in a fresh process rather than in the session
    kernel. Returns the saved path and size.
    """
    res = await services(ctx).scripts.save(name, code)
    name_only = res.path.rsplit("/", 1)[-1]
    return result(
        res,
        f"Saved {res.path} ({res.bytes_written} bytes). Run it with run_script('{name_only}').",
    )


@tool(annotations=RUNS_CODE, output_schema=schema(ScriptRun))
async def run_script(
    name: Annotated[str, Field(description="The script's name in scripts/ ('.py' optional).")],
    ctx: Context,
    args: Annotated[
        list[str] | None,
        Field(description="Command-line arguments, passed as argv (no shell)."),
    ] = None,
    timeout_s: Annotated[
        float | None,
        Field(
            gt=0,
            description="Seconds before the script is killed; the server limit applies on top.",
        ),
        seconds_check(),
    ] = None,
) -> ToolResult:
    """Run a saved script in a new Python process (the kernel's interpreter) with the
    workspace root as working directory and stdin closed.

    Use it for a clean run that does not touch session state. Returns stdout, stderr (long
    output keeps head and tail), the exit code and the duration. On timeout the script and
    every process it started are killed, and the result says so.
    """
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
