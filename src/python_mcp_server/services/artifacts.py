"""Files a cell produces: full-resolution images, plotly pages, spilled text, and the workspace
files it wrote.

Session files live in `outputs/<session_id>/` under the workspace root and are served as
`kernel://{session_id}/{filename}`. Changed workspace files are found without scanning the
workspace: a tiny audit hook inside the kernel (`KERNEL_SETUP`, installed silently on first use of
each kernel) notes every path opened for writing, renamed, copied or truncated under the
workspace, and the server collects the set after each cell (`DRAIN_EXPRESSION`).
"""

from __future__ import annotations

import ast
import json
import logging
import mimetypes
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    ArtifactNotFoundError,
    FileTooLargeError,
    InvalidArgumentError,
)
from python_mcp_server.services.models import ArtifactInfo
from python_mcp_server.workspace.paths import resolve_inside

logger = logging.getLogger(__name__)

OUTPUTS_DIR = "outputs"
MAX_CHANGED_FILES = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Kernel side. Runs once per kernel through `exec` in a namespace of its own, so the user's
# namespace gains no names; its state lives in the private module `sys.modules["__pmcp__"]`.
KERNEL_SETUP = r"""
import os, sys, types, json

def _install():
    if "__pmcp__" in sys.modules:
        return
    mod = types.ModuleType("__pmcp__")
    root = os.path.realpath(os.environ.get("PYTHON_MCP_SERVER_WORKSPACE") or os.getcwd())
    prefix = root.rstrip(os.sep) + os.sep
    changed = set()
    overflow = [0]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    events = frozenset({"open", "os.rename", "os.truncate", "os.link", "os.symlink",
                        "shutil.copyfile", "sqlite3.connect"})

    def note(path):
        if path is None or isinstance(path, int):
            return
        full = os.path.abspath(os.fsdecode(os.fspath(path)))
        if full.startswith(prefix):
            rel = full[len(prefix):]
            if len(changed) < LIMIT:
                changed.add(rel)
            elif rel not in changed:
                overflow[0] += 1

    def hook(event, args):
        if event not in events:
            return
        try:
            if event == "open":
                path, mode, flags = args
                if mode is None:
                    if not (flags or 0) & write_flags:
                        return
                elif not any(c in mode for c in "wax+"):
                    return
                note(path)
            elif event in ("os.truncate", "sqlite3.connect"):
                note(args[0])
            else:
                note(args[1])
        except Exception:
            pass

    def drain():
        paths = sorted(changed)
        more = overflow[0]
        changed.clear()
        overflow[0] = 0
        plotly = sys.modules.get("plotly.offline")
        version = None
        if plotly is not None:
            try:
                version = plotly.get_plotlyjs_version()
            except Exception:
                pass
        return json.dumps({"files": paths, "plotlyjs": version, "more": more})

    mod.drain = drain
    sys.modules["__pmcp__"] = mod
    sys.addaudithook(hook)
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        def fresh(*_):
            changed.clear()
            overflow[0] = 0

        shell.events.register("pre_run_cell", fresh)
        kernel = getattr(shell, "kernel", None)
        finish = getattr(kernel, "finish_metadata", None)
        if finish is not None:
            # hand the list back in the execute reply's metadata: no extra evaluation per cell
            def finish_metadata(parent, metadata, reply_content):
                md = finish(parent, metadata, reply_content)
                try:
                    if not parent.get("content", {}).get("silent"):
                        md[METADATA_KEY] = drain()
                except Exception:
                    pass
                return md

            kernel.finish_metadata = finish_metadata
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")

    session = getattr(getattr(shell, "kernel", None), "session", None)
    pack = getattr(session, "pack", None)
    if pack is not None:
        import re
        lone = re.compile("[" + chr(0xD800) + "-" + chr(0xDFFF) + "]")

        def clean(obj):
            if isinstance(obj, str):
                return lone.sub(lambda m: "\\u%04x" % ord(m.group()), obj)
            if isinstance(obj, dict):
                return {clean(k): clean(v) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [clean(v) for v in obj]
            return obj

        def safe_pack(obj):
            # a message with an unpaired surrogate (print("\ud800")) is not UTF-8: packing fails,
            # or (U+DC80-U+DCFF, which come from undecodable file names) yields bytes that are not
            # UTF-8; either way send it with the character escaped, so nothing batched is lost
            try:
                data = pack(obj)
                data.decode("utf-8")
                return data
            except UnicodeError:
                return pack(clean(obj))

        session.pack = safe_pack

    def splitter(stream):
        # ipykernel sends everything printed within 0.2 s as one message; cut huge ones so the
        # server never receives tens of megabytes at once.
        def split(msg):
            text = msg.get("content", {}).get("text", "")
            if len(text) <= CHUNK:
                return msg
            start = 0
            while len(text) - start > CHUNK:
                part = stream.session.msg("stream", {"name": stream.name,
                                          "text": text[start:start + CHUNK]},
                                          parent=msg["parent_header"])
                stream.session.send(stream.pub_thread, part, ident=stream.topic)
                start += CHUNK
            msg["content"]["text"] = text[start:]
            return msg
        return split

    for stream in (sys.stdout, sys.stderr):
        if all(hasattr(stream, a) for a in ("register_hook", "session", "pub_thread", "topic")):
            # hooks are per thread and messages are sent from the kernel's IO thread
            stream.pub_thread.schedule(lambda s=stream: s.register_hook(splitter(s)))

_install()
"""


def kernel_setup_code(limit: int = MAX_CHANGED_FILES, chunk: int = 1 << 19) -> str:
    """The one statement that installs the kernel-side hooks without touching user names."""
    source = f"LIMIT = {limit}\nCHUNK = {chunk}\nMETADATA_KEY = {METADATA_KEY!r}\n{KERNEL_SETUP}"
    return f"__import__('builtins').exec({source!r}, {{'__name__': '__pmcp_setup__'}})"


DRAIN_EXPRESSION = "__import__('__pmcp__').drain()"
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
    """Session output folders, the kernel:// names of their files, and changed-file details."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._root = config.workspace_root
        self._outputs = self._root / OUTPUTS_DIR

    def session_dir(self, session_id: str) -> Path:
        return self._outputs / session_id

    def uri(self, session_id: str, filename: str) -> str:
        return f"kernel://{quote(session_id, safe='')}/{quote(filename, safe='')}"

    def new_name(self, stem: str, suffix: str, token: str | None = None) -> str:
        return f"{stem}-{token or secrets.token_hex(4)}{suffix}"

    def write(self, session_id: str, filename: str, data: bytes | str) -> str:
        """Write a session file and return its kernel:// URI."""
        folder = self.session_dir(session_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8", errors="replace")
        else:
            path.write_bytes(data)
        return self.uri(session_id, filename)

    def open_text(self, session_id: str, filename: str) -> TextIO:
        """A text file in the session folder, for output that arrives in pieces."""
        folder = self.session_dir(session_id)
        folder.mkdir(parents=True, exist_ok=True)
        return (folder / filename).open("w", encoding="utf-8", errors="replace")

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
        try:
            path = resolve_inside(Path(os.path.realpath(self._root)), rel, need_name=True)
            st = path.stat()
        except OSError:
            raise ArtifactNotFoundError(session_id, filename) from None
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactNotFoundError(session_id, filename)
        cap = self._config.max_resource_bytes
        if st.st_size > cap:
            raise FileTooLargeError(
                rel, st.st_size, cap, f"Read it in pieces with read_file({rel!r}, offset=...)."
            )
        try:
            data = path.read_bytes()
        except OSError:
            raise ArtifactNotFoundError(session_id, filename) from None
        return data, guess_mime(filename)

    def describe_changed(self, rel_paths: list[str]) -> list[ArtifactInfo]:
        """Size and type of the files a cell wrote; gone, outside or not-a-file paths are left out."""
        infos: list[ArtifactInfo] = []
        root = Path(os.path.realpath(self._root))
        for rel in rel_paths[:MAX_CHANGED_FILES]:
            real = Path(os.path.realpath(root / rel))
            if root not in real.parents:
                continue
            try:
                st = real.stat()
            except OSError:
                continue
            if not real.is_file():
                continue
            name = real.relative_to(root).as_posix()
            infos.append(
                ArtifactInfo(
                    path=name,
                    uri=f"workspace://{quote(name, safe='/', errors='surrogateescape')}",
                    size=st.st_size,
                    mime_type=guess_mime(name),
                )
            )
        return infos
