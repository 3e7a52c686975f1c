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

import os

from python_mcp_server.procs import (
    descendants,
    freeze_and_kill,
    pipe_holders,
    session_members,
    start_time,
)
from python_mcp_server.procs.proc import is_wrapper


class ProcessTree:
    """The processes of one script run, remembered as they appear."""

    def __init__(
        self,
        root_pid: int,
        pipe_inodes: set[int] | None = None,
        wrappers: tuple[str, ...] = (),
    ) -> None:
        self.root_pid = root_pid
        self.pipe_inodes = pipe_inodes or set()
        self.wrappers = wrappers  # a sandbox's own processes: killed with the tree, not counted
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
        wrappers = {pid for pid in self._candidates() if is_wrapper(pid, self.wrappers)}
        stopped = freeze_and_kill(self._candidates, self.known, self.root_pid)
        self.killed |= stopped.keys()
        return sum(1 for pid in stopped if pid not in wrappers)
