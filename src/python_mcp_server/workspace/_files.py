"""File helpers for the workspace manager: walking, tree drawing, text detection, atomic writes;
the walks and writes work from folder descriptors (see `beneath`)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from collections.abc import Generator
from datetime import UTC, datetime
from urllib.parse import quote

from python_mcp_server.errors import InvalidArgumentError, WorkspaceFileExistsError
from python_mcp_server.text import require_text
from python_mcp_server.workspace.models import EntryType, FileEntry


def uri_for(rel: str) -> str:
    """The resource URI of a workspace path, percent-encoded so any file name is a valid URI."""
    return f"workspace://{quote(rel, safe='/', errors='surrogateescape')}"


def entry_type(mode: int) -> EntryType:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def walk(
    dir_fd: int, recursive: bool
) -> Generator[tuple[tuple[str, ...], os.stat_result], None, None]:
    """Entries under the folder open at `dir_fd`, in sorted depth-first order, as their names
    below it; links are reported, never followed. Each subfolder is opened from its parent's
    descriptor with O_NOFOLLOW, so a folder swapped for a link is skipped, not entered."""
    fds = [dir_fd]  # fds[i] is the folder levels[i] lists; the first is the caller's
    levels: list[tuple[tuple[str, ...], list[tuple[str, os.stat_result]]]] = [
        ((), _children(dir_fd))
    ]
    try:
        while levels:
            prefix, children = levels[-1]
            if not children:
                levels.pop()
                if len(fds) > 1:
                    os.close(fds.pop())
                continue
            name, st = children.pop()
            path = (*prefix, name)
            yield path, st
            if recursive and stat.S_ISDIR(st.st_mode):
                try:
                    fd = os.open(name, _SUBDIR, dir_fd=fds[-1])
                except OSError:
                    continue
                fds.append(fd)
                levels.append((path, _children(fd)))
    finally:
        for fd in fds[1:]:
            os.close(fd)


_SUBDIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _children(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """The entries of a folder with their lstat, last name first (popped in sorted order)."""
    try:
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    children = []
    for entry in entries:
        try:
            children.append((entry.name, entry.stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue
    return children


def tree_text(base_rel: str, entries: list[FileEntry]) -> str:
    """An indented tree of `entries`, with the folders that lead to each one."""
    prefix = "" if base_rel == "." else base_rel + "/"
    lines = [base_rel + "/" if base_rel != "." else "./"]
    shown: set[tuple[str, ...]] = set()
    for entry in entries:
        parts = tuple(entry.path[len(prefix) :].split("/"))
        for depth in range(1, len(parts)):
            if parts[:depth] not in shown:
                shown.add(parts[:depth])
                lines.append("  " * depth + parts[depth - 1] + "/")
        shown.add(parts)
        name = parts[-1] + ("/" if entry.type == "directory" else "")
        if entry.type == "symlink":
            name += " -> (link)"
        size = f"  ({entry.size} B)" if entry.size is not None else ""
        lines.append("  " * len(parts) + name + size)
    return "\n".join(lines)


def decode_content(path: str, content: str, encoding: str) -> bytes:
    """The bytes `content` stands for: UTF-8 text, or base64."""
    if encoding == "text":
        return require_text(content, "content").encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidArgumentError(
                f"The content for {path!r} is not valid base64 ({exc}). Send standard base64, "
                "or use encoding='text' for text."
            ) from exc
    raise InvalidArgumentError(f"encoding must be 'text' or 'base64', not {encoding!r}.")


def as_text(data: bytes, *, at_eof: bool) -> tuple[str, int] | None:
    """`data` as UTF-8 text and the number of bytes used, or None for binary data.

    A chunk that ends inside a multi-byte character gives back the incomplete tail (up to 3
    bytes) so the next chunk starts on a character boundary.
    """
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if at_eof or exc.start < len(data) - 3 or exc.reason != "unexpected end of data":
            return None
        head = data[: exc.start]
        return head.decode("utf-8"), len(head)


def atomic_write(
    parent: int,
    name: str,
    data: bytes,
    overwrite: bool,
    path: str,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write `data` to a temporary file beside `name` in the folder open at `parent`, then move
    it into place there (rename, or link when nothing may be replaced). The new file keeps the
    old one's mode and owner (a new one gets `owner`, when given)."""
    token = secrets.token_hex(4)
    tmp = f".{name}.{token}.tmp" if len(os.fsencode(name)) < 200 else f".{token}.tmp"
    fd = os.open(tmp, _NEW, 0o600, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            keep: tuple[int, int] | None
            try:
                old = os.stat(name, dir_fd=parent, follow_symlinks=False)
                mode, keep = stat.S_IMODE(old.st_mode), (old.st_uid, old.st_gid)
            except FileNotFoundError:
                mode, keep = 0o644, owner
            os.fchmod(f.fileno(), mode)
            if keep is not None and keep != (os.geteuid(), os.getegid()):
                with contextlib.suppress(OSError):
                    os.fchown(f.fileno(), *keep)
        if overwrite:
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        else:
            try:
                os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
            except FileExistsError:
                raise WorkspaceFileExistsError(path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent)


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
