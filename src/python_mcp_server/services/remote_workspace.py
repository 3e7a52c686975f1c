"""`RemoteWorkspace`: the workspace of kernels on a gateway, reached through a kernel there.

It is `WorkspaceFiles` as `WorkspaceManager` is, and speaks the same way: each path is checked
here with the same rules (`paths.parts_below`, against the root's real path where the kernels
are), the kernel-side `workspace_files` opens it from the root's descriptor one component at a
time (so a symlink a cell made is judged as it is here), and what comes back is shaped into
results and errors by the same code (`shaping`). Nothing is read from this server's own disk.

Large uploads travel in pieces (`UPLOAD_PIECE`): a gateway takes websocket messages of about
10 MB at most.
"""

from __future__ import annotations

import base64
import logging
import secrets
from pathlib import PurePosixPath
from typing import Any, Literal

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    FileTooLargeError,
    NotADirectoryError_,
    NotAFileError,
    PathOutsideWorkspaceError,
    ScriptNotFoundError,
    ServerError,
    WorkspaceError,
    WorkspaceFileExistsError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.services.files_kernel import FilesKernel
from python_mcp_server.workspace import shaping
from python_mcp_server.workspace.models import (
    DeleteResult,
    EntryType,
    FileContent,
    FileEntry,
    FileList,
    WorkspaceInfo,
    WriteResult,
)
from python_mcp_server.workspace.paths import (
    RULE_PARENT,
    RULE_ROOT,
    RULE_SYMLINK,
    parts_below,
)

logger = logging.getLogger(__name__)

UPLOAD_PIECE = 4 * 1024 * 1024
"""Bytes sent to the kernel in one message at most (base64 makes them a third larger)."""
_RULES = {"parent": RULE_PARENT, "symlink": RULE_SYMLINK, "root": RULE_ROOT}


def refusal(error: dict[str, Any], path: str | None, **context: Any) -> ServerError:
    """The error the local file tools raise for what the kernel-side operation refused."""
    kind = error.get("error")
    shown = path if path is not None else "."
    simple: dict[str, type[WorkspaceError]] = {
        "not_found": WorkspaceFileNotFoundError,
        "not_a_file": NotAFileError,
        "not_a_dir": NotADirectoryError_,
        "exists": WorkspaceFileExistsError,
    }
    if kind in simple:
        return simple[kind](shown)
    if kind == "outside":
        return PathOutsideWorkspaceError(shown, _RULES.get(error.get("rule", ""), RULE_SYMLINK))
    if kind == "not_regular":
        return shaping.not_regular(shown, str(error.get("verb", "read")))
    if kind == "too_large":
        return FileTooLargeError(shown, int(error["size"]), context["cap"], shaping.WRITE_HINT)
    if kind == "offset_past_end":
        return shaping.offset_past_end(shown, context["offset"], int(error["total"]))
    if kind == "is_folder":
        return shaping.is_a_folder(shown)
    if kind == "parents_blocked":
        return shaping.parents_blocked(shown)
    if kind == "no_script":
        return ScriptNotFoundError(context["script"])
    if kind == "run_lost":
        return WorkspaceError(
            "The script's run was lost: the kernel that ran it on the gateway ended (the gateway "
            "shut it down, or it died) and was replaced. Run the script again."
        )
    if kind == "os":
        return shaping.refused_by_file_system(path, str(error.get("strerror")))
    return WorkspaceError(f"The workspace on the gateway refused {shown!r}: {error}.")


class RemoteWorkspace:
    """File operations on the kernels' workspace, through `FilesKernel`."""

    def __init__(self, config: ServerConfig, kernel: FilesKernel) -> None:
        self.config = config
        self.kernel = kernel

    async def parts(self, path: str, *, need_name: bool = False) -> list[str]:
        return parts_below(await self.kernel.root(), path, need_name=need_name)

    async def call(
        self, op: str, args: dict[str, Any], path: str | None, *, retry: bool = False, **ctx: Any
    ) -> Any:
        """The kernel-side operation's value, or the error the local tools give."""
        outcome = await self.kernel.call(op, args, retry=retry)
        if "error" in outcome:
            raise refusal(outcome, path, **ctx)
        return outcome.get("ok")

    # ------------------------------------------------------------------ list

    async def listing(
        self,
        path: str = ".",
        pattern: str | None = None,
        recursive: bool = False,
        max_entries: int | None = None,
        offset: int = 0,
    ) -> FileList:
        limit = shaping.list_limit(self.config, max_entries, offset)
        args = {
            "parts": await self.parts(path),
            "pattern": pattern,
            "recursive": recursive,
            "limit": limit,
            "offset": offset,
        }
        found = await self.call("list", args, path, retry=True)
        entries = [
            FileEntry(path=rel, type=kind, size=size, modified=shaping.iso_utc(mtime))
            for rel, kind, size, mtime in found["entries"]
        ]
        base_rel = "/".join(found["base"]) or "."
        return shaping.file_list(
            base_rel, entries, found["matched"], found["scan_cut"], offset, recursive
        )

    async def info(self) -> WorkspaceInfo:
        found = await self.call(
            "info", {"max_list_entries": self.config.max_list_entries}, None, retry=True
        )
        counts = (found["bytes_used"], found["file_count"], found["folder_count"])
        return shaping.workspace_info(
            self.config, found["root"], counts, found["subfolders"], found["scan_truncated"]
        )

    async def regular_files(self, paths: list[str]) -> list[tuple[str, int]]:
        try:
            root = await self.kernel.root()
            checked = []
            for rel in paths:
                try:
                    checked.append(parts_below(root, rel, need_name=True, from_disk=True))
                except ServerError:
                    continue
            found = await self.call("regular_files", {"paths": checked}, None, retry=True)
        except ServerError as exc:  # the report is a courtesy: the cell's result goes on
            logger.warning("could not look up the files a cell wrote: %s", exc)
            return []
        return [(str(rel), int(size)) for rel, size in found]

    # ------------------------------------------------------------------ read

    async def read(self, path: str, offset: int = 0, max_bytes: int | None = None) -> FileContent:
        want = shaping.read_want(self.config, offset, max_bytes)
        args = {"parts": await self.parts(path, need_name=True), "offset": offset, "want": want}
        found = await self.call("read", args, path, retry=True, offset=offset)
        data = base64.b64decode(found["data"])
        rel = "/".join(found["parts"])
        return shaping.file_content(self.config, rel, data, offset, found["total"], max_bytes)

    async def read_whole(self, path: str, cap: int) -> tuple[str, bytes]:
        """A whole file, refused above `cap`: its real name and its bytes."""
        args = {"parts": await self.parts(path, need_name=True), "cap": cap}
        found = await self.call("read_whole", args, path, retry=True)
        data = base64.b64decode(found["data"])
        shaping.check_whole(path, found["size"], data, cap)
        return found["name"], data

    async def read_resource(self, path: str) -> tuple[str | bytes, str]:
        name, data = await self.read_whole(path, self.config.max_file_read_bytes)
        return shaping.resource_value(name, data)

    # ----------------------------------------------------------------- write

    async def write(
        self,
        path: str,
        content: str,
        encoding: Literal["text", "base64"] = "text",
        overwrite: bool = True,
        append: bool = False,
    ) -> WriteResult:
        data = shaping.decode_content(path, content, encoding)
        return await self.write_bytes(path, data, overwrite, append)

    async def write_all(self, path: str, data: bytes, overwrite: bool = True) -> WriteResult:
        return await self.write_bytes(path, data, overwrite)

    async def write_bytes(
        self, path: str, data: bytes, overwrite: bool = True, append: bool = False
    ) -> WriteResult:
        shaping.check_write_path(path)
        parts = await self.parts(path, need_name=True)
        shaping.check_write_size(self.config, path, len(data))
        cap = self.config.max_file_write_bytes
        args: dict[str, Any] = {
            "parts": parts,
            "overwrite": overwrite,
            "append": append,
            "cap": cap,
        }
        token = await self._stage(data) if len(data) > UPLOAD_PIECE else None
        if token is None:
            args["data"] = base64.b64encode(data).decode("ascii")
        else:
            args["staged"] = token
        try:
            found = await self.call("write", args, path, cap=cap)
        finally:
            if token is not None:
                await self._unstage(token)  # nothing left once written
        rel = str(found["rel"])
        return WriteResult(
            path=rel,
            bytes_written=len(data),
            created=bool(found["created"]),
            uri=shaping.uri_for(rel),
        )

    async def _stage(self, data: bytes) -> str:
        """Send `data` to the kernel in pieces; the token that names it there."""
        token = secrets.token_hex(8)
        try:
            for start in range(0, len(data), UPLOAD_PIECE):
                piece = base64.b64encode(data[start : start + UPLOAD_PIECE]).decode("ascii")
                await self.call("stage", {"token": token, "data": piece}, None)
        except BaseException:
            await self._unstage(token)
            raise
        return token

    async def _unstage(self, token: str) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.kernel.call("unstage", {"token": token})
            except ServerError as exc:
                logger.warning("an upload's pieces were not freed in the kernel: %s", exc)

    # ---------------------------------------------------------------- delete

    async def delete(self, path: str, recursive: bool = False) -> DeleteResult:
        args = {"parts": await self.parts(path, need_name=True), "recursive": recursive}
        found = await self.call("delete", args, path)
        rel = str(found["rel"])
        kind: EntryType = found["type"]
        return DeleteResult(
            path=rel, type=kind, message=shaping.DELETED[found["what"]].format(rel=rel)
        )

    # ------------------------------------------------------------------ root

    async def root(self) -> PurePosixPath:
        return await self.kernel.root()
