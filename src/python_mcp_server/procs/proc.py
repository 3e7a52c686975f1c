"""Reading Linux's `/proc`: one process's identity and links, and walks over them.

Elsewhere than Linux `/proc` is missing and every reader here finds nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of `/proc/<pid>/stat` we need. `start` (clock ticks after boot) tells a process
    from a later one that reused its pid."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    start: int
    state: str

    @property
    def alive(self) -> bool:
        """Running or sleeping: not a zombie waiting for its parent, not dead."""
        return self.state not in ("Z", "X")


def read_stat(pid: int) -> ProcStat | None:
    """`pid`'s stat, or None when there is no such process (or it cannot be read)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command (in parentheses) may hold spaces; the fields after it are: state ppid pgrp
    # session ... and starttime, the 20th after state
    fields = raw.rsplit(")", 1)[1].split()
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start=int(fields[19]),
        state=fields[0],
    )


def start_time(pid: int) -> int | None:
    """When the live process `pid` started (to recognise it later), or None if it is gone."""
    stat = read_stat(pid)
    return stat.start if stat is not None and stat.alive else None


def all_processes() -> list[ProcStat]:
    stats = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                stats.append(stat)
    return stats


def children(pid: int) -> set[int]:
    """The direct children of `pid`, from the children lists of its threads."""
    found: set[int] = set()
    for task in (PROC / str(pid) / "task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in task.read_text().split())
    return found


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (not `pid` itself)."""
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def family(pid: int) -> list[ProcStat]:
    """`pid`'s descendants, by parent links in one pass over `/proc` (so children that called
    setsid are included), and every other process in its session or process group."""
    procs = all_processes()
    children: dict[int, list[ProcStat]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found: dict[int, ProcStat] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                todo.append(child.pid)
    for proc in procs:
        if proc.pid != pid and (proc.sid == pid or proc.pgid == pid):
            found.setdefault(proc.pid, proc)
    return list(found.values())


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


def pid_exists(pid: int) -> bool:
    return (PROC / str(pid)).exists()


def command_name(pid: int) -> str:
    """The process's command name (`/proc/<pid>/comm`), or "" if it is gone."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def is_wrapper(pid: int, wrappers: Collection[str]) -> bool:
    """Whether `pid` is one of a confinement's own processes: its command name is in `wrappers`,
    or one of its first arguments (an interpreter's program) ends with one."""
    if not wrappers:
        return False
    if command_name(pid) in wrappers:
        return True
    try:
        args = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")[:4]
    except OSError:
        return False
    return any(a.decode("utf-8", "replace").endswith(tuple(wrappers)) for a in args if a)
