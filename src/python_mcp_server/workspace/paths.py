"""Workspace confinement: the rules a user's path must follow to name something in the workspace.

Every path from the model is refused, with a `PathOutsideWorkspaceError` that names the rule
broken, when it has:

* a NUL byte;
* nothing in it where a file or folder inside the workspace must be named;
* an absolute path outside the root (an absolute path inside the root is fine);
* `..` parts that lead outside the root;
* a symlink on the way, a file or folder link at any level (a dangling one too), whose target is
  outside the root.

`relative_parts` applies the first four, which need no file system; the file tools then open the
path with `beneath.Beneath`, which applies the last one while it opens, one component at a time
from the root's descriptor, so that nothing can be swapped between the check and the open.

`resolve_inside` applies all five to a path name, resolved the way the operating system will
(`os.path.realpath`). A name can change meaning once checked: it is only for paths handed to
another process (a script to run in the sandbox, a local wheel for the installer), never for the
server's own opens.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath, PurePosixPath

from python_mcp_server.errors import PathOutsideWorkspaceError
from python_mcp_server.text import require_text

RULE_NUL = "it contains a NUL byte"
RULE_EMPTY = "it is empty; name a file or folder inside the workspace"
RULE_ABSOLUTE = "it is an absolute path outside the workspace"
RULE_PARENT = "its '..' parts lead outside the workspace"
RULE_SYMLINK = "it goes through a symlink that points outside the workspace"
RULE_ROOT = "it names the workspace root itself; name a file or folder inside it"


def _inside(root: PurePath, path: PurePath) -> bool:
    return path == root or root in path.parents


def relative_parts(
    root: Path, user_path: str, *, need_name: bool = False, from_disk: bool = False
) -> list[str]:
    """The components of `user_path` below `root`, after the checks that need no file system.

    Refuses a NUL byte, an empty path or the root itself where a name is needed, an absolute
    path outside `root` and `..` parts that lead outside it, with the rule broken; and text that
    is not UTF-8 unless the path comes `from_disk` (a name that is not UTF-8 holds surrogate
    escapes). The `..` parts are kept: they are applied where the path really goes, by the walk
    in `beneath`, which also judges every symlink on the way.
    """
    return parts_below(
        PurePosixPath(os.path.realpath(root)), user_path, need_name=need_name, from_disk=from_disk
    )


def parts_below(
    real_root: PurePosixPath, user_path: str, *, need_name: bool = False, from_disk: bool = False
) -> list[str]:
    """`relative_parts` for a root given by its real path, which need not exist here (the
    workspace of kernels on another machine): no file system is looked at."""
    if "\x00" in user_path:
        raise PathOutsideWorkspaceError(user_path, RULE_NUL)
    if not from_disk:
        require_text(user_path, "path")
    if not user_path.strip():
        if need_name:
            raise PathOutsideWorkspaceError(user_path, RULE_EMPTY)
        return []
    given = PurePosixPath(user_path)
    lexical = PurePosixPath(os.path.normpath(given if given.is_absolute() else real_root / given))
    if not _inside(real_root, lexical):
        rule = RULE_ABSOLUTE if given.is_absolute() else RULE_PARENT
        raise PathOutsideWorkspaceError(user_path, rule)
    if need_name and lexical == real_root:
        raise PathOutsideWorkspaceError(user_path, RULE_ROOT)
    if given.is_absolute():  # inside the root, as checked: its place below the root
        return list(lexical.relative_to(real_root).parts)
    return [part for part in user_path.split("/") if part not in ("", ".")]


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
    parts = relative_parts(root, user_path, need_name=need_name)
    root = Path(os.path.realpath(root))
    if not parts:
        return root
    candidate = root.joinpath(*parts)
    lexical = Path(os.path.normpath(candidate))
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
