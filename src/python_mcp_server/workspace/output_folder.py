"""A folder of session outputs under the workspace, made, written and removed without following
symbolic links.

Kernels may write the workspace, so any folder on the way (`outputs/`, `outputs/<session>/`)
could be a link to somewhere else by the time the server writes, or removes, what a session
produced there. So the folder is made and opened one component at a time (`O_NOFOLLOW`), held
by a descriptor while the session lives, files are created in it exclusively through that
descriptor, and it is removed through its parent's descriptor (a folder a kernel left without
write permission is made writable first).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_chain(root: Path, parts: tuple[str, ...], create: bool) -> list[int]:
    """Descriptors of `root` and of each folder of `parts` below it, made when `create`."""
    fds = [os.open(os.path.realpath(root), _DIR_FLAGS)]
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fds[-1])
            fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
    except OSError:
        _close(fds)
        raise
    return fds


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class OutputFolder:
    """`root/<parts...>`: one session's output folder (see the module docstring)."""

    def __init__(self, root: Path, *parts: str) -> None:
        self.root = root
        self.parts = parts
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.root.joinpath(*self.parts)

    def create(self, name: str) -> BinaryIO:
        """A new file `name` in the folder (made on first use), open for writing. Raises
        OSError, FileExistsError when the name is taken (by a link, too)."""
        if self._fd is None:
            fds = _open_chain(self.root, self.parts, create=True)
            self._fd = fds.pop()
            _close(fds)
        fd = os.open(name, _NEW_FILE, 0o644, dir_fd=self._fd)
        return os.fdopen(fd, "wb")

    def unlink(self, name: str) -> None:
        """Delete the file `name` of the folder, if there."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._fd)

    def remove(self) -> None:
        """Delete the folder and all in it, then its parent when that is left empty. A folder
        already gone, or moved, is left as it is."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            fds = _open_chain(self.root, self.parts[:-1], create=False)
        except OSError:
            return
        try:
            _remove_tree(self.parts[-1], fds[-1])
            if len(fds) > 2:
                with contextlib.suppress(OSError):  # not empty: someone else's files are there
                    os.rmdir(self.parts[-2], dir_fd=fds[-2])
        finally:
            _close(fds)


def _remove_tree(name: str, parent_fd: int) -> None:
    try:
        shutil.rmtree(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError:
        _make_writable(name, parent_fd)
        shutil.rmtree(name, dir_fd=parent_fd, ignore_errors=True)


def _make_writable(name: str, parent_fd: int) -> None:
    """Give the owner full rights on `name` and every folder below it, never through a link
    (the folder is reached by an `O_PATH` descriptor, which needs no rights on it)."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except OSError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            return
        os.chmod(f"/proc/self/fd/{fd}", 0o700)
        listing = os.open(".", _DIR_FLAGS, dir_fd=fd)
    except OSError:
        return
    finally:
        os.close(fd)
    try:
        for entry in os.listdir(listing):
            _make_writable(entry, listing)
    finally:
        os.close(listing)
