"""Workspace files and scripts as the tools see them.

The file and script operations need no orchestration beyond the workspace layer, so the tools call
`Services.workspace` and `Services.scripts` directly; this module gives the tool layer (which may
not import `workspace/`) the result types and the resource read.
"""

from __future__ import annotations

import mimetypes

from python_mcp_server.workspace.manager import WorkspaceManager
from python_mcp_server.workspace.models import (
    DeleteResult,
    FileContent,
    FileEntry,
    FileList,
    ScriptRun,
    WorkspaceInfo,
    WriteResult,
)
from python_mcp_server.workspace.scripts import ScriptRunner

__all__ = [
    "DeleteResult",
    "FileContent",
    "FileEntry",
    "FileList",
    "ScriptRun",
    "ScriptRunner",
    "WorkspaceInfo",
    "WorkspaceManager",
    "WriteResult",
    "read_resource",
]


async def read_resource(workspace: WorkspaceManager, path: str) -> tuple[str | bytes, str]:
    """A whole workspace file for a resource read: (text or bytes, mime type).

    UTF-8 files without NUL bytes come back as text, anything else as bytes; the mime type is
    guessed from the file name.
    """
    real, data = await workspace.read_all(path)
    mime = mimetypes.guess_type(real.name)[0]
    if b"\x00" not in data:
        try:
            return data.decode("utf-8"), mime or "text/plain"
        except UnicodeDecodeError:
            pass
    return data, mime or "application/octet-stream"
