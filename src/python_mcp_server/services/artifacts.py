"""Files a cell produces: full-resolution images, plotly pages, spilled text, and the workspace
files it wrote.

Session files live in `outputs/<session_id>/<incarnation>/` under the workspace root, from the
session's start to its end, and are served as `kernel://{session_id}/{filename}`. Changed workspace files are found without scanning the
workspace: an audit hook inside the kernel (`kernel_ext.files`, installed silently on first use
of each kernel by `kernel_setup_code()`) notes every path opened for writing, renamed, copied or
truncated under the workspace, and the server collects the set after each cell: in the execute
reply's metadata (`METADATA_KEY`), else with `DRAIN_EXPRESSION`.
"""

from __future__ import annotations

import ast
import json
import logging
import mimetypes
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    ArtifactNotFoundError,
    FileTooLargeError,
    InvalidArgumentError,
    OutputLimitError,
    OutputNotKeptError,
    SessionOutputsGoneError,
)
from python_mcp_server.services._kernel_ext import MODULE, call_expression
from python_mcp_server.services.models import ArtifactInfo
from python_mcp_server.workspace.beneath import Beneath
from python_mcp_server.workspace.output_folder import OutputFolder

logger = logging.getLogger(__name__)

OUTPUTS_DIR = "outputs"
MAX_CHANGED_FILES = 200
_ENDED_MEMORY = 256  # ended session ids remembered, to say why their links no longer work
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def kernel_setup_code(
    limit: int = MAX_CHANGED_FILES,
    chunk: int = 1 << 19,
    layout: tuple[str, ...] = (),
    preview: tuple[int, int] = (0, 0),
) -> str:
    """The one statement that installs the kernel-side hooks without touching user names;
    with `layout`, it also makes those folders of the workspace (where the server cannot); with
    `preview` (longest side, bytes), large images get their previews made in the kernel."""
    if layout or any(preview):
        return call_expression("install", limit, chunk, METADATA_KEY, None, layout, *preview)
    return call_expression("install", limit, chunk, METADATA_KEY)


DRAIN_EXPRESSION = f"__import__({MODULE!r}).drain()"
METADATA_KEY = "python_mcp_server_files"


@dataclass(frozen=True)
class Drained:
    """What the kernel-side hook collected for one cell."""

    files: list[str]
    plotlyjs: str | None = None
    more: int = 0  # writes past the list's limit (counted, not named)


def parse_drain(user_expression: dict[str, Any] | None) -> Drained | None:
    """The drain expression's value from an execute reply's `user_expressions` entry."""
    if not user_expression or user_expression.get("status") != "ok":
        return None
    try:
        text = ast.literal_eval(user_expression["data"]["text/plain"])
    except (KeyError, ValueError, SyntaxError, TypeError):
        logger.warning("could not read the changed-file list from the kernel")
        return None
    return parse_drained(text)


def parse_drained(text: object) -> Drained | None:
    """The kernel hook's JSON report (from reply metadata or a drain expression)."""
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
        files = [str(p) for p in data.get("files", [])]
        version = data.get("plotlyjs")
        more = int(data.get("more") or 0)
    except (KeyError, ValueError, SyntaxError, TypeError, AttributeError):
        logger.warning("could not read the changed-file list from the kernel")
        return None
    return Drained(files=files, plotlyjs=str(version) if version else None, more=more)


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(eq=False)
class _Outputs:
    """One session's output folder (`outputs/<session id>/<incarnation>/`) and what it holds."""

    session_id: str
    folder: OutputFolder
    used: int = 0


class SpillFile:
    """A file that takes a long output piece by piece, each piece counted toward the bound. When
    a piece would go past it, or the session has ended, the file is deleted (a partial file is
    not kept) and OutputNotKeptError raised."""

    def __init__(self, store: ArtifactStore, outputs: _Outputs, name: str) -> None:
        self._store = store
        self._outputs = outputs
        self._name = name
        self._file: BinaryIO | None = outputs.folder.create(name)
        self._size = 0

    def write(self, text: str) -> None:
        if self._file is None:
            raise ValueError("write to a closed spill file")
        data = text.encode("utf-8", errors="replace")
        try:
            self._store.charge(self._outputs, len(data))
        except OutputNotKeptError:
            self.discard()
            raise
        self._size += len(data)
        self._file.write(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        self.close()
        self._outputs.folder.unlink(self._name)
        self._store.refund(self._outputs, self._size)
        self._size = 0


class ArtifactStore:
    """Session output folders, the kernel:// names of their files, their bound, and changed-file
    details.

    Each session (each incarnation of a session id) gets a folder of its own when it starts
    (`begin`) and loses it when it ends (`end`): deleted, expired, or when the server stops. So a
    new session with an old name never serves the old one's files, and a link of an ended
    session says it ended. All sessions' files together stay under `--max-outputs-mb`: a file
    that would go past it is not kept, and the result says so. Writes come from the event loop
    (spills) and worker threads (displays), hence the lock.
    """

    def __init__(self, config: ServerConfig, in_workspace: bool = True) -> None:
        self._config = config
        self._root = config.workspace_root
        self._in_workspace = in_workspace  # False: the file tools see the kernels' disk, not this
        self._beneath = Beneath(self._root)
        self._live: dict[str, _Outputs] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()  # session id -> how it ended
        self._limit = config.max_outputs_mb * 1024 * 1024
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        return self._used

    def begin(self, session_id: str) -> None:
        """A new session `session_id`: a folder of its own, made on its first file."""
        incarnation = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        folder = OutputFolder(self._root, OUTPUTS_DIR, session_id, incarnation)
        with self._lock:
            self._live[session_id] = _Outputs(session_id, folder)

    def end(self, session_id: str, how: str) -> OutputFolder | None:
        """The session ended (`how`: "was deleted", ...): its files are no longer served or
        written. Returns its folder, for the caller to `remove` (which may take a while)."""
        with self._lock:
            outputs = self._live.pop(session_id, None)
            self._ended[session_id] = how
            self._ended.move_to_end(session_id)
            while len(self._ended) > _ENDED_MEMORY:
                self._ended.popitem(last=False)
            if outputs is None:
                return None
            self._used -= outputs.used
            return outputs.folder

    @staticmethod
    def remove(folder: OutputFolder) -> None:
        """Delete an ended session's folder. Blocking."""
        try:
            folder.remove()
        except OSError as exc:
            logger.warning("could not remove %s: %s", folder.path, exc)

    def _outputs(self, session_id: str) -> _Outputs:
        outputs = self._live.get(session_id)
        if outputs is None:
            raise SessionOutputsGoneError(session_id, self._ended.get(session_id, "has ended"))
        return outputs

    def charge(self, outputs: _Outputs, size: int) -> None:
        """Count `size` more bytes for `outputs`; raises OutputNotKeptError past the bound, or
        when the session has ended."""
        sid = outputs.session_id
        with self._lock:
            if self._live.get(sid) is not outputs:
                raise SessionOutputsGoneError(sid, self._ended.get(sid, "has ended"))
            if self._limit and self._used + size > self._limit:
                raise OutputLimitError(self._config.max_outputs_mb)
            outputs.used += size
            self._used += size

    def refund(self, outputs: _Outputs, size: int) -> None:
        with self._lock:
            if self._live.get(outputs.session_id) is outputs:
                outputs.used -= size
                self._used -= size

    def path(self, session_id: str, filename: str) -> Path:
        """Where a live session's file `filename` is."""
        return self._outputs(session_id).folder.path / filename

    def uri(self, session_id: str, filename: str) -> str:
        return f"kernel://{quote(session_id, safe='')}/{quote(filename, safe='')}"

    def new_name(self, stem: str, suffix: str, token: str | None = None) -> str:
        return f"{stem}-{token or secrets.token_hex(4)}{suffix}"

    def write(self, session_id: str, filename: str, data: bytes | str) -> str:
        """Write a session file and return its kernel:// URI. Raises OutputNotKeptError when the
        bound or the session's end keeps it from being kept, OSError when the disk refuses."""
        raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
        outputs = self._outputs(session_id)
        self.charge(outputs, len(raw))
        try:
            with outputs.folder.create(filename) as f:
                f.write(raw)
        except OSError:
            self.refund(outputs, len(raw))
            raise
        return self.uri(session_id, filename)

    def open_spill(self, session_id: str, filename: str) -> SpillFile:
        """A text file in the session folder, for output that arrives in pieces."""
        return SpillFile(self, self._outputs(session_id), filename)

    def read(self, session_id: str, filename: str) -> tuple[bytes, str]:
        """The bytes and mime type of `kernel://{session_id}/{filename}`."""
        for label, value in (("session id", session_id), ("file name", filename)):
            if not _NAME.fullmatch(value):
                raise InvalidArgumentError(
                    f"{label.capitalize()} {value!r} is not valid in a kernel:// URI: it may "
                    "hold letters, digits, '_', '-' and '.' (no '/' or '\\'), starting with a "
                    "letter or digit. Use the URI exactly as a run_python_code result gave it."
                )
        with self._lock:
            outputs = self._live.get(session_id)
            ended = session_id in self._ended
            if outputs is None and ended:
                raise SessionOutputsGoneError(session_id, self._ended[session_id])
        if outputs is None:
            raise ArtifactNotFoundError(session_id, filename)
        parts = [*outputs.folder.parts, filename]
        rel = "/".join(parts)
        cap = self._config.max_resource_bytes
        try:
            size, data = self._beneath.read(parts, cap)
        except OSError:  # a refusal (a symlink leading outside) says so instead
            raise ArtifactNotFoundError(session_id, filename, earlier=ended) from None
        if size > cap or len(data) > cap:
            hint = (
                f"Read it in pieces with read_file({rel!r}, offset=...)."
                if self._in_workspace
                else "This server keeps it beside the kernels' workspace, out of read_file's "
                "reach: print less at a time, or have the code write it to a workspace file."
            )
            raise FileTooLargeError(rel, max(size, len(data)), cap, hint)
        return data, guess_mime(filename)

    def describe(self, found: list[tuple[str, int]]) -> list[ArtifactInfo]:
        """The files a cell wrote, as `WorkspaceFiles.regular_files` found them (real path
        below the root, size)."""
        return [
            ArtifactInfo(
                path=name,
                uri=f"workspace://{quote(name, safe='/', errors='surrogateescape')}",
                size=size,
                mime_type=guess_mime(name),
            )
            for name, size in found[:MAX_CHANGED_FILES]
        ]
