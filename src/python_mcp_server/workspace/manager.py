"""`WorkspaceManager`: list, read, write and delete files inside the workspace root.

Every path is checked by `relative_parts` and opened by `Beneath`, from the root's descriptor one
component at a time, so a cell that swaps a file for a symlink cannot make a tool read or write
outside the root. All I/O is in bytes (binary-safe); blocking work runs in a worker thread so
the event loop keeps answering while a large folder is walked or deleted.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal, ParamSpec, TypeVar

import anyio.to_thread

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    FileTooLargeError,
    NotAFileError,
    PathOutsideWorkspaceError,
    ServerError,
    WorkspaceFileExistsError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.workspace import shaping
from python_mcp_server.workspace._files import (
    atomic_write,
    decode_content,
    entry_type,
    iso_utc,
    uri_for,
    walk,
)
from python_mcp_server.workspace.beneath import Beneath
from python_mcp_server.workspace.models import (
    DeleteResult,
    FileContent,
    FileEntry,
    FileList,
    WorkspaceInfo,
    WriteResult,
)
from python_mcp_server.workspace.paths import RULE_ROOT, relative_parts, resolve_inside

logger = logging.getLogger(__name__)

SUBFOLDERS = shaping.SUBFOLDERS
SCAN_LIMIT = shaping.SCAN_LIMIT
_not_regular = shaping.not_regular

P = ParamSpec("P")
R = TypeVar("R")


class WorkspaceManager:
    """File operations confined to `config.workspace_root`. Create it with `open(config)`."""

    def __init__(self, config: ServerConfig, owner: tuple[int, int] | None = None) -> None:
        self.config = config
        self.root = config.workspace_root
        self.owner = owner  # files and folders the server creates go to this uid/gid
        self.beneath = Beneath(self.root)

    @classmethod
    def open(cls, config: ServerConfig, owner: tuple[int, int] | None = None) -> WorkspaceManager:
        """The manager for `config`, with the root and its standard subfolders created. With
        `owner` (sandboxed kernels run as another uid), what the server creates is theirs too."""
        manager = cls(config, owner)
        manager.ensure_layout()
        return manager

    def ensure_layout(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.beneath.root_fd() as root:
            for name in SUBFOLDERS:
                try:
                    os.mkdir(name, dir_fd=root)
                except FileExistsError:
                    continue
                self._give(root, name)

    def _give(self, parent: int, name: str) -> None:
        """Hand a file or folder the server created to `owner` (the kernels' uid), if set."""
        if self.owner is not None:
            with contextlib.suppress(OSError):
                os.chown(name, *self.owner, dir_fd=parent, follow_symlinks=False)

    def parts(self, user_path: str, *, need_name: bool = False) -> list[str]:
        """`user_path` below the root, checked for everything that needs no file system."""
        return relative_parts(self.root, user_path, need_name=need_name)

    def resolve(self, user_path: str, *, need_name: bool = False) -> Path:
        """The real path of `user_path`, for handing to another process only: the server's own
        opens go through `beneath`, since a name checked here can change before it is used."""
        return resolve_inside(self.root, user_path, need_name=need_name)

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        except OSError as exc:  # a name too long, a symlink loop, a full disk: the model can act
            where = args[0] if args and isinstance(args[0], str) else None
            raise shaping.refused_by_file_system(where, str(exc.strerror or exc)) from exc

    async def read_resource(self, path: str) -> tuple[str | bytes, str]:
        """A whole file for a resource read, size-capped: (text or bytes, mime type).

        UTF-8 files without NUL bytes come back as text, anything else as bytes; the mime type is
        guessed from the file name.
        """
        name, data = await self._run(self.read_whole, path)
        return shaping.resource_value(name, data)

    async def write_all(self, path: str, data: bytes, overwrite: bool = True) -> WriteResult:
        """Write bytes produced by the server (an exported notebook, for example)."""
        return await self._run(self.write_bytes, path, data, overwrite)

    async def regular_files(self, paths: list[str]) -> list[tuple[str, int]]:
        """Of `paths`, the regular files inside the root: real path below it and size."""
        return await anyio.to_thread.run_sync(self.regular_files_sync, paths)

    def regular_files_sync(self, paths: list[str]) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for rel in paths:
            try:
                parts = relative_parts(self.root, rel, need_name=True, from_disk=True)
            except ServerError:
                continue
            hit = self.beneath.stat_file(parts)
            if hit is not None:
                found.append(("/".join(hit[0]), hit[1].st_size))
        return found

    # ------------------------------------------------------------------ list

    async def listing(
        self,
        path: str = ".",
        pattern: str | None = None,
        recursive: bool = False,
        max_entries: int | None = None,
        offset: int = 0,
    ) -> FileList:
        return await self._run(self.list_sync, path, pattern, recursive, max_entries, offset)

    def list_sync(
        self,
        path: str,
        pattern: str | None,
        recursive: bool,
        max_entries: int | None,
        offset: int = 0,
    ) -> FileList:
        limit = shaping.list_limit(self.config, max_entries, offset)
        try:
            with self.beneath.open_dir(path, self.parts(path)) as (fd, base_parts):
                entries, matched, scan_cut = self._entries(
                    fd, base_parts, pattern, recursive, limit, offset
                )
        except (FileNotFoundError, NotADirectoryError):  # a folder on the way is missing
            raise WorkspaceFileNotFoundError(path) from None
        base_rel = "/".join(base_parts) or "."
        return shaping.file_list(base_rel, entries, matched, scan_cut, offset, recursive)

    def _entries(
        self,
        fd: int,
        base: tuple[str, ...],
        pattern: str | None,
        recursive: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[FileEntry], int, bool]:
        """The entries to show, how many match in all, and whether the scan was cut."""
        entries: list[FileEntry] = []
        matched = 0  # entries that match, shown or not
        with contextlib.closing(walk(fd, recursive)) as found:
            for visited, (below, st) in enumerate(found, start=1):
                if visited > SCAN_LIMIT:
                    return entries, matched, True
                rel = "/".join((*base, *below))
                target = rel if pattern and "/" in pattern else below[-1]
                if pattern and not fnmatch.fnmatchcase(target, pattern):
                    continue
                matched += 1
                if matched <= offset or len(entries) >= limit:
                    continue  # counted for `total`, not shown
                kind = entry_type(st.st_mode)
                size = st.st_size if kind == "file" else None
                entries.append(
                    FileEntry(path=rel, type=kind, size=size, modified=iso_utc(st.st_mtime))
                )
        return entries, matched, False

    # ------------------------------------------------------------------ read

    async def read(self, path: str, offset: int = 0, max_bytes: int | None = None) -> FileContent:
        return await self._run(self.read_sync, path, offset, max_bytes)

    @contextlib.contextmanager
    def _reading(self, path: str) -> Iterator[tuple[BinaryIO, int, tuple[str, ...]]]:
        """The regular file `path` names, open for reading: the file, its size, its real path."""
        try:
            fd, parts = self.beneath.open(path, self.parts(path, need_name=True), os.O_RDONLY)
        except IsADirectoryError:
            raise NotAFileError(path) from None
        except (FileNotFoundError, NotADirectoryError):
            raise WorkspaceFileNotFoundError(path) from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(path, "read")
            yield f, st.st_size, parts

    def read_sync(self, path: str, offset: int, max_bytes: int | None) -> FileContent:
        want = shaping.read_want(self.config, offset, max_bytes)
        with self._reading(path) as (f, total, parts):
            if offset > total:
                raise shaping.offset_past_end(path, offset, total)
            f.seek(offset)
            data = f.read(want)
        return shaping.file_content(self.config, "/".join(parts), data, offset, total, max_bytes)

    def read_whole(self, path: str) -> tuple[str, bytes]:
        """A whole file for a resource read, refused above the read limit: its real name (the
        last part of its real path) and its bytes."""
        cap = self.config.max_file_read_bytes
        with self._reading(path) as (f, size, parts):
            data = f.read(cap + 1) if size <= cap else b""
        shaping.check_whole(path, size, data, cap)
        return parts[-1], data

    # ----------------------------------------------------------------- write

    async def write(
        self,
        path: str,
        content: str,
        encoding: Literal["text", "base64"] = "text",
        overwrite: bool = True,
        append: bool = False,
    ) -> WriteResult:
        data = decode_content(path, content, encoding)
        return await self._run(self.write_bytes, path, data, overwrite, append)

    def write_bytes(
        self, path: str, data: bytes, overwrite: bool = True, append: bool = False
    ) -> WriteResult:
        shaping.check_write_path(path)
        parts = self.parts(path, need_name=True)
        shaping.check_write_size(self.config, path, len(data))
        try:
            if append:
                rel, created = self._append(path, parts, data)
            else:
                rel, created = self._replace(path, parts, data, overwrite)
        except NotADirectoryError as exc:
            raise shaping.parents_blocked(path) from exc
        except IsADirectoryError:
            raise NotAFileError(path) from None
        return WriteResult(path=rel, bytes_written=len(data), created=created, uri=uri_for(rel))

    def _replace(
        self, path: str, parts: list[str], data: bytes, overwrite: bool
    ) -> tuple[str, bool]:
        """Write a whole file atomically beside where `parts` lead; (real path, created)."""
        with self.beneath.locate(path, parts, make_parents=True, owner=self.owner) as target:
            if not target.name:
                raise PathOutsideWorkspaceError(path, RULE_ROOT)
            st = target.stat
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise NotAFileError(path)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise _not_regular(path, "written")
            if st is not None and not overwrite:
                raise WorkspaceFileExistsError(path)
            atomic_write(target.parent, target.name, data, overwrite, path, self.owner)
            return target.rel, st is None

    def _append(self, path: str, parts: list[str], data: bytes) -> tuple[str, bool]:
        """Add `data` to the end of the file `parts` lead to, created if missing; (real path,
        created)."""
        flags = os.O_WRONLY | os.O_APPEND
        try:
            try:
                fd, real = self.beneath.open(path, parts, flags)
                created = False
            except FileNotFoundError:
                fd, real = self.beneath.open(
                    path, parts, flags | os.O_CREAT | os.O_EXCL, make_parents=True, owner=self.owner
                )
                created = True
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a fifo no one reads, or a socket
                raise _not_regular(path, "written") from None
            raise
        with os.fdopen(fd, "wb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(path, "written")
            cap = self.config.max_file_write_bytes
            if st.st_size + len(data) > cap:
                raise FileTooLargeError(path, st.st_size + len(data), cap, shaping.WRITE_HINT)
            if created and self.owner is not None:
                with contextlib.suppress(OSError):
                    os.fchown(fd, *self.owner)
            os.set_blocking(fd, True)
            f.write(data)
        return "/".join(real), created

    # ---------------------------------------------------------------- delete

    async def delete(self, path: str, recursive: bool = False) -> DeleteResult:
        return await self._run(self.delete_sync, path, recursive)

    def delete_sync(self, path: str, recursive: bool) -> DeleteResult:
        parts = self.parts(path, need_name=True)
        try:
            with self.beneath.locate(path, parts, follow_last=False) as target:
                message = self._delete(path, target.parent, target.name, target.stat, recursive)
                rel, mode = target.rel, target.stat.st_mode if target.stat else 0
        except (FileNotFoundError, NotADirectoryError):  # a folder on the way is missing
            raise WorkspaceFileNotFoundError(path) from None
        self.ensure_layout()
        return DeleteResult(path=rel, type=entry_type(mode), message=message.format(rel=rel))

    @staticmethod
    def _delete(
        path: str, parent: int, name: str, st: os.stat_result | None, recursive: bool
    ) -> str:
        """Delete `name` in the folder open at `parent`; the message, with {rel} to fill in."""
        if not name:
            raise PathOutsideWorkspaceError(path, RULE_ROOT)
        if st is None:
            raise WorkspaceFileNotFoundError(path)
        kind = entry_type(st.st_mode)
        if kind == "directory":
            if not recursive:
                raise shaping.is_a_folder(path)
            shutil.rmtree(name, dir_fd=parent)  # descriptor-based: it never follows a link
            return shaping.DELETED["folder"]
        os.unlink(name, dir_fd=parent)
        return shaping.DELETED["link" if kind == "symlink" else "file"]

    # ------------------------------------------------------------------ info

    async def info(self) -> WorkspaceInfo:
        return await self._run(self.info_sync)

    def info_sync(self) -> WorkspaceInfo:
        files = folders = used = 0
        truncated = False
        subfolders: list[str] = []
        with (
            self.beneath.open_dir(".", []) as (fd, _),
            contextlib.closing(walk(fd, recursive=True)) as found,
        ):
            for visited, (below, st) in enumerate(found, start=1):
                if visited > SCAN_LIMIT:
                    truncated = True
                    break
                if stat.S_ISDIR(st.st_mode):
                    folders += 1
                    if len(below) == 1 and len(subfolders) < self.config.max_list_entries:
                        subfolders.append(below[0])
                elif stat.S_ISREG(st.st_mode):
                    files += 1
                    used += st.st_size
        counts = (used, files, folders)
        return shaping.workspace_info(self.config, str(self.root), counts, subfolders, truncated)
