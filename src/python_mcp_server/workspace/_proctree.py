"""Find and kill every process a script started, including ones that left its process group.

A script runs as the leader of a new session (`start_new_session=True`), so `killpg` reaches the
processes that stayed in its group. A grandchild that called `setsid()` (or `setpgid`) escapes
that, so the tree is also found through `/proc`: the children lists of each process, the
session id in `/proc/<pid>/stat`, the processes that hold the script's output pipes open, and
the descendants seen while the script ran (remembered with their start time, so a recycled pid
is never killed by mistake). Linux only; elsewhere the
process group kill is all there is.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

_PROC = Path("/proc")
_ROUNDS = 20


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, session id, start time) of a live, non-zombie `pid`, or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    # after the command: state ppid pgrp session ... starttime is field 22 (index 19 here)
    return int(fields[1]), int(fields[3]), int(fields[19])


def start_time(pid: int) -> int | None:
    st = _stat(pid)
    return st[2] if st else None


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in (_PROC / str(pid) / "task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            found.update(int(p) for p in task.read_text().split())
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (not `pid` itself)."""
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def session_members(sid: int) -> set[int]:
    """Live processes whose session id is `sid`."""
    found: set[int] = set()
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == sid:
                found.add(int(entry.name))
    return found


def pipe_holders(inodes: set[int]) -> set[int]:
    """Live processes other than this one with an open descriptor on one of the pipes."""
    targets = {f"pipe:[{inode}]" for inode in inodes}
    me = os.getpid()
    found: set[int] = set()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with os.scandir(entry / "fd") as fds:
                if any(os.readlink(fd.path) in targets for fd in fds):
                    found.add(int(entry.name))
        except OSError:
            continue
    return found


class ProcessTree:
    """The processes of one script run, remembered as they appear."""

    def __init__(self, root_pid: int, pipe_inodes: set[int] | None = None) -> None:
        self.root_pid = root_pid
        self.pipe_inodes = pipe_inodes or set()
        self.known: dict[int, int] = {}
        self.killed: set[int] = set()  # every pid `kill` ended, so others do not count them again

    def snapshot(self) -> None:
        """Remember the live descendants of the root and of every process seen before."""
        roots = {self.root_pid, *self.known}
        for pid in roots:
            for child in descendants(pid):
                if child not in self.known and (start := start_time(child)) is not None:
                    self.known[child] = start

    def _candidates(self) -> set[int]:
        found = {self.root_pid} | descendants(self.root_pid) | session_members(self.root_pid)
        found |= pipe_holders(self.pipe_inodes)
        found.discard(os.getpid())
        for pid, start in self.known.items():
            if start_time(pid) == start:
                found.add(pid)
                found |= descendants(pid)
        return found

    def kill(self) -> int:
        """Stop the whole tree (so nothing forks past us), then kill it. Returns how many died."""
        stopped: dict[int, int] = {}
        seen: set[int] = set()
        for _ in range(_ROUNDS):
            new = self._candidates() - seen
            if not new:
                break
            seen |= new
            for pid in new:
                start = start_time(pid)
                if start is None or self.known.get(pid, start) != start:
                    continue
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGSTOP)
                    stopped[pid] = start
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.root_pid, signal.SIGKILL)
        for pid, start in stopped.items():
            if start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.killed |= stopped.keys()
        return len(stopped)
