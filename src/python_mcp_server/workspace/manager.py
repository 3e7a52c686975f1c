"""`WorkspaceManager`: list, read, write and delete files inside the workspace root.

Every path goes through `resolve_inside`. All I/O is in bytes (binary-safe); blocking work runs in
a worker thread so the event loop keeps answering while a large folder is walked or deleted.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import logging
import mimetypes
import os
import shutil
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import anyio.to_thread

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    FileTooLargeError,
    InvalidArgumentError,
    NotADirectoryError_,
    NotAFileError,
    WorkspaceError,
    WorkspaceFileExistsError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.workspace._files import (
    as_text,
    atomic_write,
    decode_content,
    entry_type,
    iso_utc,
    tree_text,
    uri_for,
    walk,
)
from python_mcp_server.workspace.models import (
    DeleteResult,
    FileContent,
    FileEntry,
    FileList,
    WorkspaceInfo,
    WriteResult,
)
from python_mcp_server.workspace.paths import relative_name, resolve_inside

logger = logging.getLogger(__name__)

SUBFOLDERS = ("scripts", "outputs", "uploads")
SCAN_LIMIT = 100_000
"""Most directory entries one listing or info walk visits."""

P = ParamSpec("P")
R = TypeVar("R")


class WorkspaceManager:
    """File operations confined to `config.workspace_root`. Create it with `open(config)`."""

    def __init__(self, config: ServerConfig, owner: tuple[int, int] | None = None) -> None:
        self.config = config
        self.root = config.workspace_root
        self.owner = owner  # files and folders the server creates go to this uid/gid

    @classmethod
    def open(cls, config: ServerConfig, owner: tuple[int, int] | None = None) -> WorkspaceManager:
        """The manager for `config`, with the root and its standard subfolders created. With
        `owner` (sandboxed kernels run as another uid), what the server creates is theirs too."""
        manager = cls(config, owner)
        manager.ensure_layout()
        return manager

    def ensure_layout(self) -> None:
        for name in SUBFOLDERS:
            folder = self.root / name
            if not folder.exists():
                folder.mkdir(parents=True, exist_ok=True)
                self.give(folder)

    def give(self, path: Path) -> None:
        """Hand a file or folder the server created to `owner` (the kernels' uid), if set."""
        if self.owner is not None:
            with contextlib.suppress(OSError):
                os.lchown(path, *self.owner)

    def _make_parents(self, folder: Path) -> None:
        missing = []
        probe = folder
        while not probe.exists() and probe != self.root and self.root in probe.parents:
            missing.append(probe)
            probe = probe.parent
        folder.mkdir(parents=True, exist_ok=True)
        for made in reversed(missing):
            self.give(made)

    def resolve(self, user_path: str, *, need_name: bool = False) -> Path:
        return resolve_inside(self.root, user_path, need_name=need_name)

    def relative(self, path: Path) -> str:
        return relative_name(self.root, path)

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        except OSError as exc:  # a name too long, a symlink loop, a full disk: the model can act
            where = repr(args[0]) if args and isinstance(args[0], str) else "the path"
            raise WorkspaceError(
                f"The file system refused {where}: {exc.strerror or exc}. Use a shorter or "
                "different path, or call list_files to see what exists."
            ) from exc

    async def read_resource(self, path: str) -> tuple[str | bytes, str]:
        """A whole file for a resource read, size-capped: (text or bytes, mime type).

        UTF-8 files without NUL bytes come back as text, anything else as bytes; the mime type is
        guessed from the file name.
        """
        real, data = await self._run(self.read_whole, path)
        mime = mimetypes.guess_type(real.name)[0]
        if b"\x00" not in data:
            try:
                return data.decode("utf-8"), mime or "text/plain"
            except UnicodeDecodeError:
                pass
        return data, mime or "application/octet-stream"

    async def write_all(self, path: str, data: bytes, overwrite: bool = True) -> WriteResult:
        """Write bytes produced by the server (an exported notebook, for example)."""
        return await self._run(self.write_bytes, path, data, overwrite)

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
        if offset < 0:
            raise InvalidArgumentError(f"offset must be 0 or more, not {offset}.")
        cap = self.config.max_list_entries
        limit = cap if max_entries is None else max(1, min(max_entries, cap))
        base = self.resolve(path)
        if not base.exists():
            raise WorkspaceFileNotFoundError(path)
        if not base.is_dir():
            raise NotADirectoryError_(path)
        base_rel = self.relative(base)
        entries: list[FileEntry] = []
        visited = 0
        matched = 0  # entries that match, shown or not
        scan_cut = False
        for child, st in walk(base, recursive):
            visited += 1
            if visited > SCAN_LIMIT:
                scan_cut = True
                break
            rel = self.relative(child)
            target = rel if pattern and "/" in pattern else child.name
            if pattern and not fnmatch.fnmatchcase(target, pattern):
                continue
            matched += 1
            if matched <= offset or len(entries) >= limit:
                continue  # counted for `total`, not shown
            kind = entry_type(st.st_mode)
            size = st.st_size if kind == "file" else None
            entries.append(FileEntry(path=rel, type=kind, size=size, modified=iso_utc(st.st_mtime)))
        shown_to = offset + len(entries)
        more = matched > shown_to
        notes = []
        if more:
            notes.append(
                f"Showing entries {offset + 1}-{shown_to} of {matched}: call list_files again with "
                f"offset={shown_to} for the next ones, or narrow it with a pattern such as '*.csv'"
                + (" or recursive=false." if recursive else ".")
            )
        if offset and offset >= matched:
            notes.append(
                f"offset={offset} is past the last of the {matched} matching entries; start "
                "again with offset=0."
            )
        if scan_cut:
            notes.append(
                f"The scan stopped after {SCAN_LIMIT} entries, so there may be more than "
                f"{matched}; list a deeper path."
            )
        return FileList(
            path=base_rel,
            entries=entries,
            truncated=more or scan_cut,
            tree=tree_text(base_rel, entries),
            message=" ".join(notes) or None,
            total=matched,
            next_offset=shown_to if more else None,
        )

    # ------------------------------------------------------------------ read

    async def read(self, path: str, offset: int = 0, max_bytes: int | None = None) -> FileContent:
        return await self._run(self.read_sync, path, offset, max_bytes)

    def _file(self, path: str) -> Path:
        real = self.resolve(path, need_name=True)
        if real.is_dir():
            raise NotAFileError(path)
        if not real.is_file():
            raise WorkspaceFileNotFoundError(path)
        return real

    def read_sync(self, path: str, offset: int, max_bytes: int | None) -> FileContent:
        cap = self.config.max_file_read_bytes
        if offset < 0:
            raise InvalidArgumentError(f"offset must be 0 or more, not {offset}.")
        want = cap if max_bytes is None else min(max_bytes, cap)
        if want < 1:
            raise InvalidArgumentError(f"max_bytes must be 1 or more, not {max_bytes}.")
        real = self._file(path)
        with real.open("rb") as f:
            total = os.fstat(f.fileno()).st_size
            if offset > total:
                raise InvalidArgumentError(
                    f"offset {offset} is past the end of {path!r}, which is {total} bytes."
                )
            f.seek(offset)
            data = f.read(want)
        end = offset + len(data)
        text = as_text(data, at_eof=end >= total)
        encoding: Literal["utf-8", "base64"] = "utf-8"
        if text is not None:
            content, used = text
        else:
            content, used, encoding = base64.b64encode(data).decode("ascii"), len(data), "base64"
        end = offset + used
        truncated = end < total
        notes = []
        if max_bytes is not None and max_bytes > cap:
            notes.append(f"max_bytes was lowered to the server limit of {cap} bytes.")
        if truncated:
            notes.append(
                f"Returned bytes {offset}..{end} of {total}. Call read_file with offset={end} "
                "for the next chunk."
            )
        rel = self.relative(real)
        return FileContent(
            path=rel,
            content=content,
            encoding=encoding,
            total_size=total,
            offset=offset,
            bytes_returned=used,
            truncated=truncated,
            next_offset=end if truncated else None,
            uri=uri_for(rel),
            message=" ".join(notes) or None,
        )

    def read_whole(self, path: str) -> tuple[Path, bytes]:
        """A whole file for a resource read, refused above the read limit."""
        real = self._file(path)
        cap = self.config.max_file_read_bytes
        with real.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(cap + 1) if size <= cap else b""
        if size > cap or len(data) > cap:
            raise FileTooLargeError(
                path,
                max(size, len(data)),
                cap,
                "Read it in chunks with read_file(path, offset=...).",
            )
        return real, data

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
        cap = self.config.max_file_write_bytes
        if path.endswith(("/", "\\")):
            raise InvalidArgumentError(
                f"{path!r} ends with a slash, so it names a folder; give a file name such as "
                f"'{path.rstrip('/')}/data.txt'. Folders are created as needed."
            )
        real = self.resolve(path, need_name=True)
        if real.is_dir():
            raise NotAFileError(path)
        existed = real.exists()
        if existed and not real.is_file():
            raise InvalidArgumentError(
                f"{path!r} is not a regular file (a pipe, socket or device); only regular files "
                "can be written. Choose another path."
            )
        before = real.stat().st_size if append and existed else 0
        if before + len(data) > cap:
            raise FileTooLargeError(
                path,
                before + len(data),
                cap,
                "Write it as several smaller files, or produce it with code.",
            )
        if existed and not overwrite and not append:
            raise WorkspaceFileExistsError(path)
        try:
            self._make_parents(real.parent)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidArgumentError(
                f"Cannot create the folders for {path!r}: a file is in the way. Call list_files "
                "to see what exists."
            ) from exc
        if append:
            with real.open("ab") as f:
                f.write(data)
        else:
            atomic_write(real, data, overwrite, path, self.owner)
        if not existed:
            self.give(real)
        rel = self.relative(real)
        return WriteResult(path=rel, bytes_written=len(data), created=not existed, uri=uri_for(rel))

    # ---------------------------------------------------------------- delete

    async def delete(self, path: str, recursive: bool = False) -> DeleteResult:
        return await self._run(self.delete_sync, path, recursive)

    def delete_sync(self, path: str, recursive: bool) -> DeleteResult:
        real = resolve_inside(self.root, path, need_name=True, follow_last=False)
        try:
            mode = real.lstat().st_mode
        except FileNotFoundError:
            raise WorkspaceFileNotFoundError(path) from None
        kind = entry_type(mode)
        rel = self.relative(real)
        if kind == "directory":
            if not recursive:
                raise InvalidArgumentError(
                    f"{path!r} is a folder. Pass recursive=true to delete it and everything in "
                    "it, or delete the files inside one by one."
                )
            shutil.rmtree(real)
            message = f"Deleted the folder {rel!r} and everything in it."
        else:
            real.unlink()
            message = f"Deleted {rel!r}."
            if kind == "symlink":
                message = f"Deleted the link {rel!r} (its target was not touched)."
        self.ensure_layout()
        return DeleteResult(path=rel, type=kind, message=message)

    # ------------------------------------------------------------------ info

    async def info(self) -> WorkspaceInfo:
        return await self._run(self.info_sync)

    def info_sync(self) -> WorkspaceInfo:
        files = folders = used = 0
        truncated = False
        subfolders: list[str] = []
        for visited, (path, st) in enumerate(walk(self.root, recursive=True), start=1):
            if visited > SCAN_LIMIT:
                truncated = True
                break
            if stat.S_ISDIR(st.st_mode):
                folders += 1
                if path.parent == self.root and len(subfolders) < self.config.max_list_entries:
                    subfolders.append(path.name)
            elif stat.S_ISREG(st.st_mode):
                files += 1
                used += st.st_size
        c = self.config
        return WorkspaceInfo(
            root=str(self.root),
            bytes_used=used,
            file_count=files,
            folder_count=folders,
            subfolders=subfolders,
            scan_truncated=truncated,
            max_file_read_bytes=c.max_file_read_bytes,
            max_file_write_bytes=c.max_file_write_bytes,
            max_list_entries=c.max_list_entries,
        )
