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

from python_mcp_server.procfs import PROC, all_processes, descendants, start_time

_ROUNDS = 20


def session_members(sid: int) -> set[int]:
    """Live processes whose session id is `sid`."""
    return {stat.pid for stat in all_processes() if stat.sid == sid and stat.alive}


def pipe_holders(inodes: set[int]) -> set[int]:
    """Live processes other than this one with an open descriptor on one of the pipes."""
    targets = {f"pipe:[{inode}]" for inode in inodes}
    me = os.getpid()
    found: set[int] = set()
    for entry in PROC.iterdir():
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
