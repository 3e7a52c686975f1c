"""Open paths beneath the workspace root from its descriptor, one component at a time.

The kernel side of the server's `workspace.beneath`, in the standard library alone, for a kernel
that serves the workspace to a server on another machine (kernels on a gateway). The rules are
the same: the path arrives as components already checked by the server (no NUL, no absolute
path outside the root, no `..` that leaves it), and each component is looked at with `lstat`
from the descriptor of the folder before it. A folder is entered with `O_NOFOLLOW`, so one
swapped for a link after the look is not entered; a symlink is read (`readlink`) and followed
only while its target stays beneath the root (an absolute target must name a place under the
root's real path); a `..` pops back to the folder the walk came from and is refused at the root.
The operating system never follows a link here: what is judged is what is used.

A refusal raises `Refused(kind, ...)`; the server turns each kind into the same error, with the
same message, as its own file tools give.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import Any

MAX_LINKS = 40
"""Symlinks followed in one walk before it gives up with ELOOP (the kernel's own limit)."""
MAX_RETRIES = 16
"""Walks of one open before a path that keeps changing under it is given up with ELOOP."""

DIR_FLAGS = (
    getattr(os, "O_PATH", os.O_RDONLY)
    | os.O_DIRECTORY
    | os.O_NOFOLLOW
    | getattr(os, "O_CLOEXEC", 0)
)
LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
OPEN_FLAGS = (
    os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
)


class Refused(Exception):
    """A request the workspace rules refuse: `kind` names the rule, `info` its details."""

    def __init__(self, kind: str, **info: Any) -> None:
        super().__init__(kind)
        self.kind = kind
        self.info = info


def loop_error(path: str) -> OSError:
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


class Walk:
    """One walk: the folders entered so far (name and descriptor, the root first) and the
    components still to go."""

    def __init__(self, root: Root, root_fd: int, parts: list[str]) -> None:
        self.root_parts = root.parts
        self.stack: list[tuple[str, int]] = [("", os.dup(root_fd))]
        self.pending = list(reversed(parts))
        self.links = 0

    @property
    def cur(self) -> int:
        return self.stack[-1][1]

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.stack[1:])

    def close(self) -> None:
        for _, fd in self.stack:
            os.close(fd)
        self.stack.clear()

    def _escape(self) -> Refused:
        return Refused("outside", rule="symlink" if self.links else "parent")

    def _more(self) -> bool:
        return any(part not in ("", ".") for part in self.pending)

    def _up(self) -> None:
        if len(self.stack) == 1:
            raise self._escape()
        os.close(self.stack.pop()[1])

    def _follow(self, target: str) -> None:
        """Continue with a link's `target`."""
        self.links += 1
        if self.links > MAX_LINKS:
            raise loop_error("/".join(self.names()))
        parts = [p for p in target.split("/") if p not in ("", ".")]
        if target.startswith("/"):
            root = self.root_parts
            if tuple(parts[: len(root)]) != root:
                raise Refused("outside", rule="symlink")
            parts = parts[len(root) :]
            while len(self.stack) > 1:
                os.close(self.stack.pop()[1])
        self.pending.extend(reversed(parts))

    def _enter(self, part: str) -> bool:
        """Enter the folder `part`; False when it is no folder (any more)."""
        try:
            fd = os.open(part, DIR_FLAGS, dir_fd=self.cur)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                return False
            raise
        self.stack.append((part, fd))
        return True

    def run(
        self, follow_last: bool, make_parents: bool
    ) -> tuple[str, os.stat_result | None] | None:
        """Walk every component. The last one, when it is not a folder (or is missing): its
        name and lstat (None when missing); None when the walk ended in a folder."""
        made = retries = 0
        while self.pending:
            part = self.pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                self._up()
                continue
            last = not self._more()
            try:
                st = os.lstat(part, dir_fd=self.cur)
            except FileNotFoundError:
                if last:
                    return part, None
                if not make_parents or made > MAX_RETRIES:
                    raise
                made += 1
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=self.cur)
                self.pending.append(part)
                continue
            if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                try:
                    target = os.readlink(part, dir_fd=self.cur)
                except OSError as exc:  # no link any more: look again
                    if exc.errno != errno.EINVAL or retries > MAX_RETRIES:
                        raise
                    retries += 1
                    self.pending.append(part)
                    continue
                self._follow(target)
                continue
            if stat.S_ISDIR(st.st_mode):
                if not self._enter(part):  # swapped for a link or a file: look again
                    retries += 1
                    if retries > MAX_RETRIES:
                        raise loop_error(part)
                    self.pending.append(part)
                continue
            if last:
                return part, st
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), part)
        return None


class Root:
    """The workspace root, and every path opened from its descriptor."""

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)
        self.parts = tuple(p for p in self.path.split("/") if p)

    @contextlib.contextmanager
    def fd(self) -> Iterator[int]:
        fd = os.open(self.path, DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def walk(
        self, parts: list[str], follow_last: bool = True, make_parents: bool = False
    ) -> Iterator[tuple[Walk, tuple[str, os.stat_result | None] | None]]:
        with self.fd() as root_fd:
            walk = Walk(self, root_fd, parts)
            try:
                yield walk, walk.run(follow_last, make_parents)
            finally:
                walk.close()

    @contextlib.contextmanager
    def locate(
        self, parts: list[str], follow_last: bool = True, make_parents: bool = False
    ) -> Iterator[tuple[int, str, tuple[str, ...], os.stat_result | None]]:
        """Where `parts` lead: the folder holding it (a descriptor), its name there ('' for the
        root), its real path below the root, its lstat (None when missing)."""
        with self.walk(parts, follow_last, make_parents) as (walk, last):
            if last is not None:
                name, st = last
                yield walk.cur, name, (*walk.names(), name), st
            elif len(walk.stack) == 1:
                yield walk.cur, "", (), os.fstat(walk.cur)
            else:
                name, fd = walk.stack[-1]
                yield walk.stack[-2][1], name, walk.names(), os.fstat(fd)

    @contextlib.contextmanager
    def open_dir(self, parts: list[str]) -> Iterator[tuple[int, tuple[str, ...]]]:
        """The folder `parts` lead to, open for listing, and its real path below the root."""
        with self.walk(parts) as (walk, last):
            if last is not None:
                raise Refused("not_found" if last[1] is None else "not_a_dir")
            fd = os.open(".", LIST_FLAGS, dir_fd=walk.cur)
            try:
                yield fd, walk.names()
            finally:
                os.close(fd)

    def open(
        self, parts: list[str], flags: int, make_parents: bool = False
    ) -> tuple[int, tuple[str, ...]]:
        """Open the file `parts` lead to with `flags` (plus O_NOFOLLOW, O_NONBLOCK): the
        descriptor and its real path below the root. IsADirectoryError for a folder."""
        flags |= OPEN_FLAGS
        missing = False
        for _ in range(MAX_RETRIES):
            with self.walk(parts, True, make_parents) as (walk, last):
                if last is None:
                    if len(walk.stack) == 1:
                        raise Refused("outside", rule="root")
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
                try:
                    fd = os.open(last[0], flags, 0o666, dir_fd=walk.cur)
                except OSError as exc:
                    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOENT and not missing):
                        missing = exc.errno == errno.ENOENT
                        continue
                    raise
                return fd, (*walk.names(), last[0])
        raise loop_error("/".join(parts))
