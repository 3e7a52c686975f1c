"""Which workspace files a cell wrote, found without scanning the workspace.

An audit hook sees every `open` for writing, rename, truncate, link, file copy and sqlite
connection in the kernel process; paths under the workspace root are kept (up to a limit, the
rest only counted) until the server collects them after the cell.
"""

from __future__ import annotations

import os
from typing import Any

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
EVENTS = frozenset(
    {
        "open",
        "os.rename",
        "os.truncate",
        "os.link",
        "os.symlink",
        "shutil.copyfile",
        "sqlite3.connect",
    }
)


def workspace_root() -> str:
    """The workspace the server names, else the kernel's working directory."""
    return os.path.realpath(os.environ.get("PYTHON_MCP_SERVER_WORKSPACE") or os.getcwd())


class ChangeTracker:
    """The set of workspace paths written since the last `take`."""

    def __init__(self, root: str, limit: int) -> None:
        self.prefix = root.rstrip(os.sep) + os.sep
        self.limit = limit
        self.changed: set[str] = set()
        self.overflow = 0

    def note(self, path: Any) -> None:
        """Keep `path` if it lies under the workspace (file descriptors and None are ignored)."""
        if path is None or isinstance(path, int):
            return
        full = os.path.abspath(os.fsdecode(os.fspath(path)))
        if not full.startswith(self.prefix):
            return
        rel = full[len(self.prefix) :]
        if len(self.changed) < self.limit:
            self.changed.add(rel)
        elif rel not in self.changed:
            self.overflow += 1

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook: note the path of each write-like event."""
        if event not in EVENTS:
            return
        try:
            if event == "open":
                path, mode, flags = args
                if mode is None:
                    if not (flags or 0) & WRITE_FLAGS:
                        return
                elif not any(c in mode for c in "wax+"):
                    return
                self.note(path)
            elif event in ("os.truncate", "sqlite3.connect"):
                self.note(args[0])
            else:
                self.note(args[1])
        # An audit hook's exception is raised from the user's own `open`, so nothing may escape:
        # a path we cannot read (odd types, an undecodable name, a deleted working directory) is
        # simply not listed.
        except Exception:  # noqa: BLE001, S110
            pass

    def clear(self) -> None:
        self.changed.clear()
        self.overflow = 0

    def take(self) -> tuple[list[str], int]:
        """The sorted paths and the count past the limit; both start again from empty."""
        paths = sorted(self.changed)
        more = self.overflow
        self.clear()
        return paths, more
