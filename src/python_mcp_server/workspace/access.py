"""`WorkspaceFiles`: what the file tools, notebook export and changed-file reports need of the
workspace, wherever it is.

Two implement it: `manager.WorkspaceManager`, for a workspace on this server's disk (kernels on
this machine), and the services' `RemoteWorkspace`, for the kernels' own disk when they run on a
gateway (through a kernel there). Both check paths with the same rules (`paths`) and shape
results and errors with the same code (`shaping`), so a tool behaves and speaks the same way in
both.
"""

from __future__ import annotations

from typing import Literal, Protocol

from python_mcp_server.workspace.models import (
    DeleteResult,
    FileContent,
    FileList,
    WorkspaceInfo,
    WriteResult,
)


class WorkspaceFiles(Protocol):
    async def listing(
        self,
        path: str = ".",
        pattern: str | None = None,
        recursive: bool = False,
        max_entries: int | None = None,
        offset: int = 0,
    ) -> FileList: ...

    async def read(self, path: str, offset: int = 0, max_bytes: int | None = None) -> FileContent:
        """One chunk of a file: text, or base64 for binary data."""
        ...

    async def read_resource(self, path: str) -> tuple[str | bytes, str]:
        """A whole file, within the read limit: (text or bytes, mime type)."""
        ...

    async def write(
        self,
        path: str,
        content: str,
        encoding: Literal["text", "base64"] = "text",
        overwrite: bool = True,
        append: bool = False,
    ) -> WriteResult: ...

    async def write_all(self, path: str, data: bytes, overwrite: bool = True) -> WriteResult:
        """Write bytes the server produced (an exported notebook, for example)."""
        ...

    async def delete(self, path: str, recursive: bool = False) -> DeleteResult: ...

    async def info(self) -> WorkspaceInfo: ...

    async def regular_files(self, paths: list[str]) -> list[tuple[str, int]]:
        """Of `paths` (relative, as a kernel reported them), the regular files inside the
        workspace: each one's real path below the root and its size. The rest are left out."""
        ...
