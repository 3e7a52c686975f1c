"""Ending a kernel and everything it started, so nothing outlives a session.

Two layers, chosen at runtime:
- the kernel's cgroup v2 group (`procs.Cgroup`), when the machine has a writable cgroup v2 tree:
  `cgroup.kill` ends every process in it, including `setsid` and double-forked daemons;
- a walk of `/proc` taken *before* the kill (`kernel_tree`): the kernel's descendants and every
  process still in its session. That is the only layer on machines without cgroups.

A kernel always starts, whether or not cgroups are available.
"""

from __future__ import annotations

from python_mcp_server.procs import family, read_stat


def kernel_tree(pid: int, start: int | None = None) -> dict[int, int]:
    """The processes to end with the kernel `pid` (started at `start`), pid -> start time: its
    descendants (by parent links, so children that called setsid are included) and any process
    left in its session or process group. Empty when `pid` now names another process (the kernel
    ended and the pid was reused), so a stranger's processes are never taken for the kernel's."""
    now = read_stat(pid)
    if now is not None and start is not None and now.start != start:
        return {}
    return {proc.pid: proc.start for proc in family(pid)}
