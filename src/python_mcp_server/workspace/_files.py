"""File helpers for the workspace manager: walking, tree drawing, text detection, atomic writes."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
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


def walk(base: Path, recursive: bool) -> Iterator[tuple[Path, os.stat_result]]:
    """Entries under `base` in sorted depth-first order; links are reported, never followed."""
    try:
        with os.scandir(base) as it:
            children = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for child in children:
        try:
            st = child.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        path = Path(child.path)
        yield path, st
        if recursive and stat.S_ISDIR(st.st_mode):
            yield from walk(path, recursive)


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
    target: Path, data: bytes, overwrite: bool, path: str, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to a temporary file beside `target`, then move it into place. The new file
    keeps the old one's mode and owner (a new one gets `owner`, when given)."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        keep: tuple[int, int] | None
        try:
            old = target.stat()
            mode, keep = stat.S_IMODE(old.st_mode), (old.st_uid, old.st_gid)
        except FileNotFoundError:
            mode, keep = 0o644, owner
        tmp.chmod(mode)
        if keep is not None and keep != (os.geteuid(), os.getegid()):
            with contextlib.suppress(OSError):
                os.chown(tmp, *keep)
        if overwrite:
            tmp.replace(target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise WorkspaceFileExistsError(path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
