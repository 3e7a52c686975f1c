"""Workspace confinement: the one place that turns a user's path into a real path.

Every tool and resource that takes a path from the model goes through `resolve_inside`. It refuses,
with a `PathOutsideWorkspaceError` that names the rule broken:

* a NUL byte;
* an empty path where a file or folder inside the workspace must be named;
* an absolute path outside the root (an absolute path inside the root is fine);
* a path whose `..` parts lead outside the root;
* a path that leaves the root through a symlink, a file or folder link at any level, including a
  dangling link whose target is outside.

The check resolves the path the way the operating system will (`os.path.realpath`) and compares the
result with the real root, so `link/..` and chains of links are judged by where they really go.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from python_mcp_server.errors import PathOutsideWorkspaceError
from python_mcp_server.text import require_text

RULE_NUL = "it contains a NUL byte"
RULE_EMPTY = "it is empty; name a file or folder inside the workspace"
RULE_ABSOLUTE = "it is an absolute path outside the workspace"
RULE_PARENT = "its '..' parts lead outside the workspace"
RULE_SYMLINK = "it goes through a symlink that points outside the workspace"
RULE_ROOT = "it names the workspace root itself; name a file or folder inside it"


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def resolve_inside(
    root: Path,
    user_path: str,
    *,
    need_name: bool = False,
    follow_last: bool = True,
) -> Path:
    """The real path `user_path` names inside `root`, or `PathOutsideWorkspaceError`.

    `root` should already be resolved (``ServerConfig.workspace_root`` is). Relative paths are
    taken from the root. With `need_name`, an empty path and a path that is the root itself are
    refused (reading, writing or deleting needs something inside the root). With
    `follow_last=False` the last part is not followed when it is a symlink: the result is the
    link itself inside its (checked) real parent folder, which is what deleting a link needs.
    """
    if "\x00" in user_path:
        raise PathOutsideWorkspaceError(user_path, RULE_NUL)
    require_text(user_path, "path")
    root = Path(os.path.realpath(root))
    if not user_path.strip():
        if need_name:
            raise PathOutsideWorkspaceError(user_path, RULE_EMPTY)
        return root
    given = Path(user_path)
    candidate = given if given.is_absolute() else root / given
    lexical = Path(os.path.normpath(candidate))
    if not _inside(root, lexical):
        rule = RULE_ABSOLUTE if given.is_absolute() else RULE_PARENT
        raise PathOutsideWorkspaceError(user_path, rule)
    if need_name and lexical == root:
        raise PathOutsideWorkspaceError(user_path, RULE_ROOT)
    if follow_last:
        real = Path(os.path.realpath(candidate))
    else:
        parent = Path(os.path.realpath(lexical.parent))
        real = parent / lexical.name
        if not _inside(root, parent):
            raise PathOutsideWorkspaceError(user_path, RULE_SYMLINK)
    if not _inside(root, real):
        raise PathOutsideWorkspaceError(user_path, RULE_SYMLINK)
    if need_name and real == root:
        raise PathOutsideWorkspaceError(user_path, RULE_ROOT)
    return real


def relative_name(root: Path, path: Path) -> str:
    """`path` relative to `root`, with '/' separators; '.' for the root itself."""
    rel = path.relative_to(Path(os.path.realpath(root)))
    return PurePosixPath(*rel.parts).as_posix() if rel.parts else "."
