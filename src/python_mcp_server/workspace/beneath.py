"""Open paths beneath the workspace root from its directory descriptor, never by a full path.

Checking a path and then opening it by name leaves a window in which a cell can swap a file for
a symlink to a file outside the workspace: the check sees the file, the open follows the link.
Here resolving and opening are one step. `Beneath` opens the root once per operation and walks
the path one component at a time from there: each component is opened with `O_PATH|O_NOFOLLOW`
relative to the folder before it, so what is checked is what is opened. A symlink met on the way
is read through its own descriptor and followed only while its target stays beneath the root
(an absolute target must name a place under the root's real path); a `..` pops back to the folder
the walk came from and is refused at the root. These are openat2's `RESOLVE_BENEATH` rules, plus
absolute links that point back inside. The file itself is opened with `O_NOFOLLOW` from the
descriptor of its folder: a link swapped in after the walk makes that open fail with ELOOP, and
the walk runs again and judges the link. `O_NONBLOCK` keeps a fifo from blocking the open.

Where the kernel has openat2, a path with no symlink on the way is opened in one call
(`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`); anything else it refuses goes
to the walk, which decides and gives the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.errors import (
    NotADirectoryError_,
    PathOutsideWorkspaceError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.workspace._openat2 import Openat2
from python_mcp_server.workspace.paths import RULE_PARENT, RULE_ROOT, RULE_SYMLINK

MAX_LINKS = 40
"""Symlinks followed in one walk before it gives up with ELOOP (the kernel's own limit)."""
MAX_RETRIES = 16
"""Walks of one open before a path that keeps changing under it is given up with ELOOP."""

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass
class Target:
    """Where a path led: the folder holding it (a descriptor, valid inside `locate`), its name
    there ('' for the root itself), its real path below the root, and its `lstat` (None when
    nothing of that name exists yet)."""

    parent: int
    name: str
    parts: tuple[str, ...]
    stat: os.stat_result | None

    @property
    def rel(self) -> str:
        """The real path relative to the root, '/'-separated; '.' for the root."""
        return "/".join(self.parts) or "."


def _loop(path: str) -> OSError:
    return OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


class _Walk:
    """One walk: the folders entered so far (name and descriptor, the root first) and the
    components still to go."""

    def __init__(self, beneath: Beneath, root_fd: int, user_path: str, parts: list[str]) -> None:
        self.root_parts = beneath.parts
        self.user_path = user_path
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

    def _escape(self) -> PathOutsideWorkspaceError:
        return PathOutsideWorkspaceError(
            self.user_path, RULE_SYMLINK if self.links else RULE_PARENT
        )

    def _more(self) -> bool:
        return any(part not in ("", ".") for part in self.pending)

    def _up(self) -> None:
        if len(self.stack) == 1:
            raise self._escape()
        os.close(self.stack.pop()[1])

    def _follow(self, link_fd: int) -> None:
        """Continue with the target of the link open at `link_fd` (read from that very link)."""
        self.links += 1
        if self.links > MAX_LINKS:
            raise _loop(self.user_path)
        target = os.readlink("", dir_fd=link_fd)
        parts = [p for p in target.split("/") if p not in ("", ".")]
        if target.startswith("/"):
            root = self.root_parts
            if tuple(parts[: len(root)]) != root:
                raise PathOutsideWorkspaceError(self.user_path, RULE_SYMLINK)
            parts = parts[len(root) :]
            while len(self.stack) > 1:
                os.close(self.stack.pop()[1])
        self.pending.extend(reversed(parts))

    def _make(self, name: str, owner: tuple[int, int] | None) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=self.cur)
            if owner is not None:
                with contextlib.suppress(OSError):
                    os.chown(name, *owner, dir_fd=self.cur, follow_symlinks=False)

    def run(
        self, follow_last: bool, make_parents: bool, owner: tuple[int, int] | None
    ) -> tuple[str, os.stat_result | None] | None:
        """Walk every component. The last one, when it is not a folder (or is missing): its
        name and lstat (None when missing); None when the walk ended in a folder (the top of
        the stack, or the root)."""
        made = 0
        while self.pending:
            part = self.pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                self._up()
                continue
            last = not self._more()
            try:
                fd = os.open(part, _PATH, dir_fd=self.cur)
            except FileNotFoundError:
                if last:
                    return part, None
                if not make_parents or made > MAX_RETRIES:
                    raise
                made += 1
                self._make(part, owner)
                self.pending.append(part)
                continue
            try:
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                    self._follow(fd)
                    continue
            except BaseException:
                os.close(fd)
                raise
            if stat.S_ISDIR(st.st_mode):
                self.stack.append((part, fd))
                continue
            os.close(fd)
            if last:
                return part, st
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), self.user_path)
        return None


class Beneath:
    """The workspace root, and every path opened from its directory descriptor."""

    def __init__(self, root: Path, *, use_openat2: bool = True) -> None:
        self.root = Path(os.path.realpath(root))
        self.parts = tuple(p for p in str(self.root).split("/") if p)
        openat2 = Openat2() if use_openat2 else None
        self.openat2 = openat2 if openat2 is not None and openat2.usable else None

    @contextlib.contextmanager
    def root_fd(self) -> Iterator[int]:
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _walk(
        self,
        user_path: str,
        parts: list[str],
        follow_last: bool,
        make_parents: bool,
        owner: tuple[int, int] | None,
    ) -> Iterator[tuple[_Walk, tuple[str, os.stat_result | None] | None]]:
        with self.root_fd() as root_fd:
            walk = _Walk(self, root_fd, user_path, parts)
            try:
                yield walk, walk.run(follow_last, make_parents, owner)
            finally:
                walk.close()

    @contextlib.contextmanager
    def locate(
        self,
        user_path: str,
        parts: list[str],
        *,
        follow_last: bool = True,
        make_parents: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> Iterator[Target]:
        """Where `parts` (below the root, from `paths.relative_parts`) lead, with the folder
        that holds it open. With `follow_last` False a final symlink is the target itself; with
        `make_parents` missing folders on the way are created (and given to `owner`)."""
        with self._walk(user_path, parts, follow_last, make_parents, owner) as (walk, last):
            if last is not None:
                name, st = last
                yield Target(walk.cur, name, (*walk.names(), name), st)
            elif len(walk.stack) == 1:
                yield Target(walk.cur, "", (), os.fstat(walk.cur))
            else:
                name, fd = walk.stack[-1]
                yield Target(walk.stack[-2][1], name, walk.names(), os.fstat(fd))

    @contextlib.contextmanager
    def open_dir(self, user_path: str, parts: list[str]) -> Iterator[tuple[int, tuple[str, ...]]]:
        """The folder `parts` lead to, open for listing, and its real path below the root.
        WorkspaceFileNotFoundError when it is missing, NotADirectoryError_ when it is a file;
        FileNotFoundError or NotADirectoryError when a folder on the way is."""
        with self._walk(user_path, parts, True, False, None) as (walk, last):
            if last is not None:
                if last[1] is None:
                    raise WorkspaceFileNotFoundError(user_path)
                raise NotADirectoryError_(user_path)
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=walk.cur)
            try:
                yield fd, walk.names()
            finally:
                os.close(fd)

    def open(
        self,
        user_path: str,
        parts: list[str],
        flags: int,
        *,
        mode: int = 0o666,
        make_parents: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> tuple[int, tuple[str, ...]]:
        """Open the file `parts` lead to with `flags` (plus O_NOFOLLOW, O_NONBLOCK, O_NOCTTY,
        O_CLOEXEC): the descriptor and its real path below the root. IsADirectoryError for a
        folder; the caller checks anything else with `fstat` (a fifo opens without blocking)."""
        flags |= _OPEN
        fast = self._open_no_links(parts, flags, mode)
        if fast is not None:
            return fast, _lexical(parts)
        missing = False
        for _ in range(MAX_RETRIES):
            with self._walk(user_path, parts, True, make_parents, owner) as (walk, last):
                if last is None:
                    if len(walk.stack) == 1:
                        raise PathOutsideWorkspaceError(user_path, RULE_ROOT)
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), user_path)
                try:
                    fd = os.open(last[0], flags, mode, dir_fd=walk.cur)
                except OSError as exc:
                    # a symlink now (the next walk follows it, or refuses it); or missing, maybe
                    # for the moment a rename replaced it: walk again (for a missing file, once)
                    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOENT and not missing):
                        missing = exc.errno == errno.ENOENT
                        continue
                    raise
                return fd, (*walk.names(), last[0])
        raise _loop(user_path)

    def create(self, parts: list[str], *, owner: tuple[int, int] | None = None) -> int:
        """A regular file where `parts` lead, created or emptied, open for writing; missing
        folders on the way are created. OSError when something else is in its place."""
        user_path = "/".join(parts)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd, _ = self.open(user_path, parts, flags, make_parents=True, owner=owner)
        try:
            _require_regular(fd, user_path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, parts: list[str], cap: int) -> tuple[int, bytes]:
        """The size of the regular file `parts` lead to and its first `cap` + 1 bytes (none when
        it is larger than `cap`). OSError when it is missing or not a regular file."""
        user_path = "/".join(parts)
        fd, _ = self.open(user_path, parts, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            size = _require_regular(fd, user_path).st_size
            return size, f.read(cap + 1) if size <= cap else b""

    def stat_file(self, parts: list[str]) -> tuple[tuple[str, ...], os.stat_result] | None:
        """The real path and `lstat` of the regular file `parts` lead to (links followed while
        they stay beneath); None when there is none there (missing, a folder, something else,
        or outside the root). Nothing is opened."""
        try:
            with self.locate("/".join(parts), parts) as target:
                st = target.stat
                if st is None or not stat.S_ISREG(st.st_mode):
                    return None
                return target.parts, st
        except (OSError, PathOutsideWorkspaceError):
            return None

    def _open_no_links(self, parts: list[str], flags: int, mode: int) -> int | None:
        """openat2's one-call open of a path with no symlink on the way; None when it cannot
        (no openat2, a link on the way, an error, a folder): the walk decides those."""
        if self.openat2 is None:
            return None
        with self.root_fd() as root_fd:
            try:
                fd = self.openat2.open_no_links(root_fd, "/".join(parts), flags, mode)
            except OSError:
                return None
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd


def _require_regular(fd: int, user_path: str) -> os.stat_result:
    """`fstat` of `fd`, set to blocking, or OSError when it is not a regular file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", user_path)
    os.set_blocking(fd, True)
    return st


def _lexical(parts: list[str]) -> tuple[str, ...]:
    """`parts` with '.' and '..' applied: the real path when no symlink is on the way."""
    out: list[str] = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part not in ("", "."):
            out.append(part)
    return tuple(out)
