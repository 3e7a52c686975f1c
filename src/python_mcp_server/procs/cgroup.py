"""cgroup v2 groups: everything a process starts stays in its group, and dies with it.

A kernel gets a group (`<cgroup2>/python-mcp-server/<server pid>-<kernel id>`): its pid is moved
in right after launch, its children inherit the group, and `cgroup.kill` ends all of them at once,
including `setsid` and double-forked daemons. A script gets one through a `ProcessJail`, joined
between fork and exec. Where no writable cgroup v2 tree exists there are no groups, and owners
fall back to a process-tree kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path

from python_mcp_server.procs.proc import is_wrapper, pid_exists

logger = logging.getLogger(__name__)

CGROUP_PARENT = "python-mcp-server"
_CGROUP2_CANDIDATES = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def find_cgroup_parent() -> Path | None:
    """A writable cgroup v2 folder for kernel groups, with `cgroup.kill` (Linux >= 5.14), or None.

    Hybrid hosts mount v2 at /sys/fs/cgroup/unified; pure v2 hosts at /sys/fs/cgroup.
    """
    for base in _CGROUP2_CANDIDATES:
        if not (base / "cgroup.procs").is_file():
            continue
        parent = base / CGROUP_PARENT
        probe = parent / f"probe-{secrets.token_hex(4)}"
        try:
            parent.mkdir(exist_ok=True)
            probe.mkdir()
        except OSError:
            continue
        usable = (probe / "cgroup.kill").is_file()
        with contextlib.suppress(OSError):
            probe.rmdir()
        if usable:
            return parent
    return None


class Cgroup:
    """One cgroup v2 group: a kernel's, or a script's (inside a `ProcessJail`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, parent: Path, name: str) -> Cgroup | None:
        path = parent / name
        try:
            path.mkdir()
        except OSError as exc:
            logger.info("no cgroup for a kernel (%s); using process-tree kill", exc)
            return None
        return cls(path)

    def add(self, pid: int) -> bool:
        """Move `pid` into the group. False (and the group removed) if the kernel refuses."""
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            logger.info("could not move pid %s into %s (%s)", pid, self.path, exc)
            self.remove()
            return False
        return True

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def populated(self) -> bool:
        try:
            events = (self.path / "cgroup.events").read_text()
        except OSError:
            return False
        return "populated 1" in events

    def kill(self) -> None:
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError as exc:
            logger.warning("cgroup.kill failed for %s (%s); killing its pids", self.path, exc)
            for pid in self.pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> bool:
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    async def close(self, timeout_s: float = 5.0) -> None:
        """Kill everything in the group, wait until it is empty, and remove the group."""
        if not self.path.exists():
            return
        self.kill()
        step = 0.01
        for _ in range(max(1, int(timeout_s / step))):
            if self.remove():  # rmdir fails (EBUSY) until the last process has exited
                return
            await asyncio.sleep(step)
        logger.error("cgroup %s could not be removed; pids %s", self.path, self.pids())


def sweep_stale_cgroups(parent: Path) -> int:
    """End and remove kernel groups left by servers that no longer run (killed with SIGKILL).

    Groups are named `<server pid>-<kernel id>`; a group whose server pid is gone is stale.
    """
    swept = 0
    try:
        entries = list(parent.iterdir())
    except OSError:
        return 0
    for entry in entries:
        owner = entry.name.split("-", 1)[0]
        if not entry.is_dir() or not owner.isdigit() or pid_exists(int(owner)):
            continue
        group = Cgroup(entry)
        if group.populated():
            group.kill()
        if group.remove():
            swept += 1
    if swept:
        logger.info("removed %s kernel cgroups left by earlier servers", swept)
    return swept


def end_groups_of(parent: Path, server_pid: int, timeout_s: float = 5.0) -> int:
    """Kill everything in the groups `parent/<server_pid>-*` (v2 kill groups, and v1 limit
    groups: there each process is killed) and remove them, waiting (bounded) for them to empty.
    For a server known to be dead; returns how many groups were removed."""
    try:
        found = [g for g in parent.iterdir() if g.name.startswith(f"{server_pid}-")]
    except OSError:
        return 0
    groups = [Cgroup(g) for g in found if g.is_dir()]
    removed = 0
    deadline = time.monotonic() + timeout_s
    while groups:
        for group in groups:
            if (group.path / "cgroup.kill").exists():
                group.kill()
            else:
                for pid in group.pids():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        left = [g for g in groups if not g.remove()]  # rmdir fails until the group is empty
        removed += len(groups) - len(left)
        groups = left
        if not groups or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for group in groups:
        logger.warning("cgroup %s could not be removed; pids %s", group.path, group.pids())
    return removed


class ProcessJail:
    """A cgroup v2 group for a short-lived process (a script) and everything it starts, so that
    daemons it leaves behind, double-forked and detached ones included, can be ended with it."""

    def __init__(self, parent: Path) -> None:
        self._parent = parent
        self._group: Cgroup | None = None

    def before_start(self) -> Callable[[], None] | None:
        """A `preexec_fn` that moves the new process into the group before it runs anything."""
        group = Cgroup.create(self._parent, f"{os.getpid()}-script-{secrets.token_hex(4)}")
        if group is None:
            return None
        self._group = group
        procs = str(group.path / "cgroup.procs")

        def join() -> None:  # runs in the child between fork and exec: keep it minimal
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

        return join

    async def end(
        self, already_killed: Collection[int] = (), wrappers: Collection[str] = ()
    ) -> int:
        """Kill what is still running in the group and remove it; how many processes it held,
        not counting `already_killed` (ended by another mechanism and maybe still exiting) nor
        processes named in `wrappers` (a sandbox's own processes, on their way out)."""
        group, self._group = self._group, None
        if group is None:
            return 0
        left = len({p for p in group.pids() if not is_wrapper(p, wrappers)} - set(already_killed))
        await group.close()
        return left


def jail_factory(parent: Path | None) -> Callable[[], ProcessJail] | None:
    """Makes a `ProcessJail` per script where cgroups work, else None (process-tree kill only)."""
    if parent is None:
        return None
    return lambda: ProcessJail(parent)
