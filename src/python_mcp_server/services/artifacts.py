"""Files a cell produces: full-resolution images, plotly pages, spilled text, and the workspace
files it wrote.

Session files live in `outputs/<session_id>/` under the workspace root and are served as
`kernel://{session_id}/{filename}`. Changed workspace files are found without scanning the
workspace: an audit hook inside the kernel (`kernel_ext.files`, installed silently on first use
of each kernel by `kernel_setup_code()`) notes every path opened for writing, renamed, copied or
truncated under the workspace, and the server collects the set after each cell: in the execute
reply's metadata (`METADATA_KEY`), else with `DRAIN_EXPRESSION`.
"""

from __future__ import annotations

import ast
import errno
import json
import logging
import mimetypes
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    ArtifactNotFoundError,
    FileTooLargeError,
    InvalidArgumentError,
    PathOutsideWorkspaceError,
    ServerError,
)
from python_mcp_server.services._kernel_ext import MODULE, call_expression
from python_mcp_server.services.models import ArtifactInfo
from python_mcp_server.workspace.beneath import Beneath
from python_mcp_server.workspace.paths import relative_parts

logger = logging.getLogger(__name__)

OUTPUTS_DIR = "outputs"
MAX_CHANGED_FILES = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def kernel_setup_code(limit: int = MAX_CHANGED_FILES, chunk: int = 1 << 19) -> str:
    """The one statement that installs the kernel-side hooks without touching user names."""
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


class ArtifactStore:
    """Session output folders, the kernel:// names of their files, and changed-file details.

    Every file is opened from the workspace root's descriptor (`Beneath`), so a cell that turns
    `outputs/` or a session folder into a symlink cannot make the server write or read outside
    the workspace: the write fails (and is logged by its caller), the read is refused.
    """

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._root = config.workspace_root
        self._beneath = Beneath(self._root)

    def uri(self, session_id: str, filename: str) -> str:
        return f"kernel://{quote(session_id, safe='')}/{quote(filename, safe='')}"

    def new_name(self, stem: str, suffix: str, token: str | None = None) -> str:
        return f"{stem}-{token or secrets.token_hex(4)}{suffix}"

    def _create(self, session_id: str, filename: str) -> int:
        try:
            return self._beneath.create([OUTPUTS_DIR, session_id, filename])
        except PathOutsideWorkspaceError as exc:  # callers log an OSError and go on
            raise OSError(errno.EXDEV, str(exc)) from exc

    def write(self, session_id: str, filename: str, data: bytes | str) -> str:
        """Write a session file and return its kernel:// URI."""
        if isinstance(data, str):
            data = data.encode("utf-8", errors="replace")
        with os.fdopen(self._create(session_id, filename), "wb") as f:
            f.write(data)
        return self.uri(session_id, filename)

    def open_text(self, session_id: str, filename: str) -> TextIO:
        """A text file in the session folder, for output that arrives in pieces."""
        fd = self._create(session_id, filename)
        return os.fdopen(fd, "w", encoding="utf-8", errors="replace")

    def read(self, session_id: str, filename: str) -> tuple[bytes, str]:
        """The bytes and mime type of `kernel://{session_id}/{filename}`."""
        for label, value in (("session id", session_id), ("file name", filename)):
            if not _NAME.fullmatch(value):
                raise InvalidArgumentError(
                    f"{label.capitalize()} {value!r} is not valid in a kernel:// URI: it may "
                    "hold letters, digits, '_', '-' and '.' (no '/' or '\\'), starting with a "
                    "letter or digit. Use the URI exactly as a run_python_code result gave it."
                )
        rel = f"{OUTPUTS_DIR}/{session_id}/{filename}"
        cap = self._config.max_resource_bytes
        try:
            size, data = self._beneath.read([OUTPUTS_DIR, session_id, filename], cap)
        except OSError:  # a refusal (a symlink leading outside) says so instead
            raise ArtifactNotFoundError(session_id, filename) from None
        if size > cap or len(data) > cap:
            raise FileTooLargeError(
                rel,
                max(size, len(data)),
                cap,
                f"Read it in pieces with read_file({rel!r}, offset=...).",
            )
        return data, guess_mime(filename)

    def describe_changed(self, rel_paths: list[str]) -> list[ArtifactInfo]:
        """Size and type of the files a cell wrote; gone, outside or not-a-file paths are left out."""
        infos: list[ArtifactInfo] = []
        for rel in rel_paths[:MAX_CHANGED_FILES]:
            try:
                parts = relative_parts(self._root, rel, need_name=True, from_disk=True)
            except ServerError:
                continue
            found = self._beneath.stat_file(parts)
            if found is None:
                continue
            name = "/".join(found[0])
            infos.append(
                ArtifactInfo(
                    path=name,
                    uri=f"workspace://{quote(name, safe='/', errors='surrogateescape')}",
                    size=found[1].st_size,
                    mime_type=guess_mime(name),
                )
            )
        return infos
