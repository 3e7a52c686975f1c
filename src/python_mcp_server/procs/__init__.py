"""Processes: reading Linux's `/proc`, and ending a process tree so nothing outlives its owner.

The one place that reads `/proc` and sends kill signals; imports nothing else of ours, so the
kernels and workspace layers both use it:

- `proc`: one process's identity (`ProcStat`, with its start time to tell it from a later
  process that reused its pid) and walks over the tree: by children lists, by parent links, by
  session id, by who holds a pipe open;
- `kill`: signalling a process only while it is still the one we found, and freezing a tree
  round after round before killing it, so nothing forks past the kill;
- `cgroup`: a cgroup v2 group per kernel or script (`Cgroup`, `ProcessJail`), whose members die
  together, detached and double-forked ones included;
- `startup_text`: blanking a secret (the server's token) out of what this process's own
  `/proc/self/cmdline` and `/proc/self/environ` show (imported by its one user, not here);
- `leftovers` and `watchdog`: what a server killed before it could clean up left (its runtime
  folder, its kernels' processes and groups), ended by its watchdog or by the next server.

Which processes belong to a kernel, or to a script, is decided by their owners
(`kernels/reaper.py`, `workspace/_proctree.py`). Elsewhere than Linux `/proc` is missing, every
reader here finds nothing and a process-group kill is all there is.
"""

from python_mcp_server.procs.cgroup import (
    Cgroup,
    ProcessJail,
    find_cgroup_parent,
    jail_factory,
    sweep_stale_cgroups,
)
from python_mcp_server.procs.kill import freeze_and_kill, kill_same
from python_mcp_server.procs.proc import (
    ProcStat,
    children,
    descendants,
    family,
    pipe_holders,
    read_stat,
    session_members,
    start_time,
)

__all__ = [
    "Cgroup",
    "ProcStat",
    "ProcessJail",
    "children",
    "descendants",
    "family",
    "find_cgroup_parent",
    "freeze_and_kill",
    "jail_factory",
    "kill_same",
    "pipe_holders",
    "read_stat",
    "session_members",
    "start_time",
    "sweep_stale_cgroups",
]
