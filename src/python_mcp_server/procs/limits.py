"""Resource limits per kernel through cgroup v1 controllers: memory, pids and cpu.

Hosts with a hybrid hierarchy (v1 controllers, a v2 tree with only its core files) are common:
there the limits live in `/sys/fs/cgroup/{memory,pids,cpu}/python-mcp-server/<name>/`, while
`cgroup.kill` stays with the v2 group (`cgroup.Cgroup`). On a pure v2 host the same limits are
files of the v2 group (`memory.max`, `pids.max`, `cpu.max`). A process joins every group between
fork and exec (through `procs_files`), so nothing it starts escapes them; the memory group's OOM counter tells a
kernel killed for memory from one killed from outside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import secrets
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PARENT = "python-mcp-server"
V1_ROOT = Path("/sys/fs/cgroup")
V2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class LimitSupport:
    """Which controllers this host lets us use, and where their parent folders are."""

    memory: Path | None = None  # v1 memory parent, or a v2 parent with memory.max
    pids: Path | None = None
    cpu: Path | None = None
    v2: bool = False  # the parents are one v2 folder (files memory.max, pids.max, cpu.max)

    @property
    def any(self) -> bool:
        return any((self.memory, self.pids, self.cpu))


def _usable_parent(base: Path, probe_file: str) -> Path | None:
    """`base/python-mcp-server`, if we may create groups there that have `probe_file`."""
    if not base.is_dir():
        return None
    parent = base / PARENT
    probe = parent / f"probe-{secrets.token_hex(4)}"
    try:
        parent.mkdir(exist_ok=True)
        probe.mkdir()
    except OSError:
        return None
    usable = (probe / probe_file).is_file()
    with contextlib.suppress(OSError):
        probe.rmdir()
    return parent if usable else None


def _enable_v2_controllers(base: Path) -> None:
    """On a pure v2 host, let groups under our parent use memory, pids and cpu."""
    for folder in (base, base / PARENT):
        with contextlib.suppress(OSError):
            (folder / "cgroup.subtree_control").write_text("+memory +pids +cpu")


def probe_support() -> LimitSupport:
    """What this host offers, found by creating (and removing) a probe group per controller."""
    v1 = LimitSupport(
        memory=_usable_parent(V1_ROOT / "memory", "memory.limit_in_bytes"),
        pids=_usable_parent(V1_ROOT / "pids", "pids.max"),
        cpu=_usable_parent(V1_ROOT / "cpu", "cpu.cfs_quota_us"),
    )
    if v1.any:
        return v1
    for base in V2_ROOTS:
        if not (base / "cgroup.controllers").is_file():
            continue
        _enable_v2_controllers(base)
        memory = _usable_parent(base, "memory.max")
        pids = _usable_parent(base, "pids.max")
        cpu = _usable_parent(base, "cpu.max")
        if memory or pids or cpu:
            return LimitSupport(memory=memory, pids=pids, cpu=cpu, v2=True)
    return LimitSupport()


def sweep_stale_limit_groups(support: LimitSupport) -> int:
    """Remove empty groups that servers no longer running left behind; returns how many."""
    removed = 0
    for parent in {p for p in (support.memory, support.pids, support.cpu) if p is not None}:
        for group in parent.iterdir():
            server_pid = group.name.split("-", 1)[0]
            if not group.is_dir() or not server_pid.isdigit():
                continue
            if int(server_pid) == os.getpid() or Path(f"/proc/{server_pid}").exists():
                continue
            with contextlib.suppress(OSError):
                group.rmdir()
                removed += 1
    return removed


class LimitGroup:
    """One kernel's limits: a group in each usable controller."""

    def __init__(self, support: LimitSupport, folders: list[Path]) -> None:
        self._support = support
        self.folders = folders

    @classmethod
    def create(
        cls,
        support: LimitSupport,
        name: str,
        memory_mb: int | None,
        max_processes: int | None,
        cpus: float | None,
    ) -> LimitGroup:
        """Make the groups and set the limits. Raises OSError (the groups removed) on failure."""
        group = cls(support, [])
        try:
            if support.memory is not None and memory_mb:
                group._make(support.memory / name, group._memory_files(memory_mb))
            if support.pids is not None and max_processes:
                group._make(support.pids / name, {"pids.max": str(max_processes)})
            if support.cpu is not None and cpus:
                group._make(support.cpu / name, group._cpu_files(cpus))
        except OSError:
            group.remove()
            raise
        return group

    def _memory_files(self, memory_mb: int) -> dict[str, str]:
        limit = str(memory_mb * 1024 * 1024)
        if self._support.v2:
            return {"memory.max": limit, "memory.swap.max": "0"}
        # memsw (memory + swap) only exists with swap accounting; set it when it is there
        return {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit}

    def _cpu_files(self, cpus: float) -> dict[str, str]:
        quota = max(1000, int(cpus * _CPU_PERIOD_US))
        if self._support.v2:
            return {"cpu.max": f"{quota} {_CPU_PERIOD_US}"}
        return {"cpu.cfs_period_us": str(_CPU_PERIOD_US), "cpu.cfs_quota_us": str(quota)}

    def _make(self, folder: Path, files: dict[str, str]) -> None:
        if folder not in self.folders:
            folder.mkdir(exist_ok=True)
            self.folders.append(folder)
        for filename, value in files.items():
            path = folder / filename
            if path.name == "memory.memsw.limit_in_bytes" and not path.exists():
                continue
            if path.name == "memory.swap.max" and not path.exists():
                continue
            path.write_text(value)

    def procs_files(self) -> list[Path]:
        """The `cgroup.procs` files a process writes its pid to, to join every group."""
        return [folder / "cgroup.procs" for folder in self.folders]

    def oom_kills(self) -> int:
        """How many processes the memory limit has killed."""
        for folder in self.folders:
            for name, key in (("memory.oom_control", "oom_kill"), ("memory.events", "oom_kill")):
                with contextlib.suppress(OSError, ValueError):
                    for line in (folder / name).read_text().splitlines():
                        field, _, value = line.partition(" ")
                        if field == key:
                            return int(value)
        return 0

    def processes_refused(self) -> int:
        """How many new processes or threads the pids limit refused (fork or clone failed)."""
        for folder in self.folders:
            count = _events(folder / "pids.events", "max")
            if count is not None:
                return count
        return 0

    def remove(self) -> None:
        """Remove the groups (their processes are gone: the kernel's cgroup.kill saw to that)."""
        for folder in self.folders:
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("could not remove %s (%s)", folder, exc)
        self.folders = []


def _events(path: Path, key: str) -> int | None:
    """The counter `key` of an events file (`pids.events`: "max 3"), or None if unreadable."""
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            field, _, value = line.partition(" ")
            if field == key:
                return int(value)
    return None


@dataclass(frozen=True)
class ProcessLimit:
    """A limit on this process's processes and threads: where it comes from, and the numbers."""

    source: str  # "its cgroup's pids.max", "ulimit -u"
    limit: int
    in_use: int | None = None


def own_process_limits() -> list[ProcessLimit]:
    """The limits on how many processes and threads this process (the server) may have: its
    cgroup's pids.max (the nearest group up its tree that sets one), and RLIMIT_NPROC for a user
    other than root (root is not held to it)."""
    found = []
    group = _own_pids_group()
    while group is not None and (group / "pids.max").is_file():
        with contextlib.suppress(OSError, ValueError):
            value = (group / "pids.max").read_text().strip()
            if value != "max":
                current = (group / "pids.current").read_text().strip()
                found.append(ProcessLimit("its cgroup's pids.max", int(value), int(current)))
                break
        group = group.parent
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY:
        found.append(ProcessLimit("ulimit -u", soft))
    return found


def _own_pids_group() -> Path | None:
    """This process's pids cgroup folder (v1 pids hierarchy, else the v2 group)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return V1_ROOT / "pids" / path.lstrip("/")
    for line in lines:
        hierarchy, _, path = line.split(":", 2)
        if hierarchy == "0":
            for root in V2_ROOTS:
                if (root / "cgroup.procs").is_file():
                    return root / path.lstrip("/")
    return None
