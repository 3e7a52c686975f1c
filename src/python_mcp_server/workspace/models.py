"""Result values of the workspace operations (pydantic, so the tools get output schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EntryType = Literal["file", "directory", "symlink", "other"]


class FileEntry(BaseModel):
    """One entry of a folder listing."""

    path: str = Field(description="Path relative to the workspace root, with '/' separators.")
    type: EntryType = Field(
        description="'file', 'directory', 'symlink' (not followed) or 'other' (socket, fifo)."
    )
    size: int | None = Field(description="Size in bytes for files; None for folders and links.")
    modified: str = Field(description="Last modification time, ISO 8601 in UTC.")


class FileList(BaseModel):
    """The result of list_files."""

    path: str = Field(description="The folder listed, relative to the workspace root.")
    entries: list[FileEntry]
    truncated: bool = Field(
        description="True when the listing was cut at max_entries (or the scan limit); more "
        "entries exist than are shown."
    )
    tree: str = Field(description="The same entries drawn as an indented tree.")
    message: str | None = Field(default=None, description="Why and where the listing was cut.")
    total: int = Field(
        default=0,
        description="How many entries match in all (counted up to the scan limit), shown or not.",
    )
    next_offset: int | None = Field(
        default=None,
        description="Pass it as offset to list the next entries; null when none are left.",
    )


class FileContent(BaseModel):
    """The result of read_file: one chunk of a file."""

    path: str
    content: str = Field(description="The bytes read: UTF-8 text, or base64 when binary.")
    encoding: Literal["utf-8", "base64"] = Field(
        description="'utf-8' when content is the text itself; 'base64' when the bytes were not "
        "UTF-8 text (decode content with base64 to get them)."
    )
    total_size: int = Field(description="Size of the whole file in bytes.")
    offset: int = Field(description="Byte offset the chunk starts at.")
    bytes_returned: int = Field(description="Number of file bytes in this chunk.")
    truncated: bool = Field(description="True when the file goes on past this chunk.")
    next_offset: int | None = Field(
        default=None, description="Pass this as offset to read the next chunk; None at the end."
    )
    uri: str = Field(description="The file as a workspace:// resource.")
    message: str | None = None


class WriteResult(BaseModel):
    """The result of write_file and save_script."""

    path: str
    bytes_written: int
    created: bool = Field(description="True when the file is new; False when it was replaced.")
    uri: str = Field(description="The file as a workspace:// resource.")


class DeleteResult(BaseModel):
    """The result of delete_file."""

    path: str
    type: EntryType = Field(description="What was deleted.")
    message: str


class WorkspaceInfo(BaseModel):
    """The result of get_workspace_info."""

    root: str = Field(
        description="Absolute path of the workspace folder, as the kernels see it (on their "
        "machine when they run on a gateway)."
    )
    bytes_used: int = Field(description="Total size of the files found.")
    file_count: int
    folder_count: int
    subfolders: list[str] = Field(description="Folders directly under the root.")
    scan_truncated: bool = Field(
        description="True when the tree was too large to walk completely; counts are lower bounds."
    )
    max_file_read_bytes: int = Field(description="Largest chunk read_file returns.")
    max_file_write_bytes: int = Field(description="Largest file write_file accepts.")
    max_list_entries: int = Field(description="Most entries list_files returns.")


class ScriptRun(BaseModel):
    """The result of run_script."""

    name: str = Field(description="The script's file name inside scripts/.")
    exit_code: int | None = Field(
        description="The process exit code; negative for a signal (-9 when it was killed)."
    )
    timed_out: bool = Field(description="True when the script ran past timeout_s and was killed.")
    duration_ms: float
    stdout: str = Field(description="Standard output; head and tail kept when it was long.")
    stderr: str = Field(description="Standard error; head and tail kept when it was long.")
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    killed_processes: int = Field(
        default=0, description="How many processes of the script's tree the server killed."
    )
    message: str | None = Field(
        default=None, description="What the server did beyond running the script."
    )
