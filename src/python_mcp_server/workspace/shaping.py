"""What the file tools check before touching a file, and how they shape what they found into
results and errors: one place for both ways to the workspace (this server's disk, and the
kernels' disk through a kernel), so the two give the same results and the same messages."""

from __future__ import annotations

import base64
import mimetypes
from typing import Literal

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import FileTooLargeError, InvalidArgumentError, WorkspaceError
from python_mcp_server.workspace._files import as_text, decode_content, iso_utc, tree_text, uri_for
from python_mcp_server.workspace.models import FileContent, FileEntry, FileList, WorkspaceInfo

__all__ = ["decode_content", "iso_utc", "uri_for"]  # and the names defined here

SUBFOLDERS = ("scripts", "outputs", "uploads")
SCAN_LIMIT = 100_000
"""Most directory entries one listing or info walk visits."""
NOT_REGULAR = (
    "{path!r} is not a regular file (a pipe, socket or device); only regular files can be "
    "{verb}. Choose another path."
)
WRITE_HINT = "Write it as several smaller files, or produce it with code."
READ_HINT = "Read it in chunks with read_file(path, offset=...)."
DELETED = {
    "folder": "Deleted the folder {rel!r} and everything in it.",
    "link": "Deleted the link {rel!r} (its target was not touched).",
    "file": "Deleted {rel!r}.",
}


def not_regular(path: str, verb: str) -> InvalidArgumentError:
    return InvalidArgumentError(NOT_REGULAR.format(path=path, verb=verb))


def refused_by_file_system(path: str | None, reason: str) -> WorkspaceError:
    """An error of the file system the model can act on (a name too long, a symlink loop, a
    full disk)."""
    where = repr(path) if path is not None else "the path"
    return WorkspaceError(
        f"The file system refused {where}: {reason}. Use a shorter or different path, or call "
        "list_files to see what exists."
    )


def parents_blocked(path: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Cannot create the folders for {path!r}: a file is in the way. Call list_files to see "
        "what exists."
    )


def is_a_folder(path: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{path!r} is a folder. Pass recursive=true to delete it and everything in it, or "
        "delete the files inside one by one."
    )


def offset_past_end(path: str, offset: int, total: int) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"offset {offset} is past the end of {path!r}, which is {total} bytes."
    )


# ------------------------------------------------------------------------------ list


def list_limit(config: ServerConfig, max_entries: int | None, offset: int) -> int:
    """How many entries a listing shows; refuses a negative offset."""
    if offset < 0:
        raise InvalidArgumentError(f"offset must be 0 or more, not {offset}.")
    cap = config.max_list_entries
    return cap if max_entries is None else max(1, min(max_entries, cap))


def file_list(
    base_rel: str,
    entries: list[FileEntry],
    matched: int,
    scan_cut: bool,
    offset: int,
    recursive: bool,
) -> FileList:
    """A listing's result, with the notes that say where and why it was cut."""
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


# ------------------------------------------------------------------------------ read


def read_want(config: ServerConfig, offset: int, max_bytes: int | None) -> int:
    """How many bytes one read returns at most; refuses a bad offset or max_bytes."""
    cap = config.max_file_read_bytes
    if offset < 0:
        raise InvalidArgumentError(f"offset must be 0 or more, not {offset}.")
    want = cap if max_bytes is None else min(max_bytes, cap)
    if want < 1:
        raise InvalidArgumentError(f"max_bytes must be 1 or more, not {max_bytes}.")
    return want


def file_content(
    config: ServerConfig,
    rel: str,
    data: bytes,
    offset: int,
    total: int,
    max_bytes: int | None,
) -> FileContent:
    """One chunk read from `offset` of the file `rel`, which is `total` bytes."""
    cap = config.max_file_read_bytes
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


def check_whole(path: str, size: int, data: bytes, cap: int) -> None:
    """Refuse a whole-file read of a file over the read limit."""
    if size > cap or len(data) > cap:
        raise FileTooLargeError(path, max(size, len(data)), cap, READ_HINT)


def resource_value(name: str, data: bytes) -> tuple[str | bytes, str]:
    """A file for a resource read: UTF-8 without NUL bytes as text, anything else as bytes;
    the mime type guessed from its name."""
    mime = mimetypes.guess_type(name)[0]
    if b"\x00" not in data:
        try:
            return data.decode("utf-8"), mime or "text/plain"
        except UnicodeDecodeError:
            pass
    return data, mime or "application/octet-stream"


# ----------------------------------------------------------------------------- write


def check_write_path(path: str) -> None:
    if path.endswith(("/", "\\")):
        raise InvalidArgumentError(
            f"{path!r} ends with a slash, so it names a folder; give a file name such as "
            f"'{path.rstrip('/')}/data.txt'. Folders are created as needed."
        )


def check_write_size(config: ServerConfig, path: str, size: int) -> None:
    cap = config.max_file_write_bytes
    if size > cap:
        raise FileTooLargeError(path, size, cap, WRITE_HINT)


# ------------------------------------------------------------------------------ info


def workspace_info(
    config: ServerConfig,
    root: str,
    counts: tuple[int, int, int],
    subfolders: list[str],
    truncated: bool,
) -> WorkspaceInfo:
    """`counts` are the bytes used, the files and the folders."""
    used, files, folders = counts
    return WorkspaceInfo(
        root=root,
        bytes_used=used,
        file_count=files,
        folder_count=folders,
        subfolders=subfolders,
        scan_truncated=truncated,
        max_file_read_bytes=config.max_file_read_bytes,
        max_file_write_bytes=config.max_file_write_bytes,
        max_list_entries=config.max_list_entries,
    )
