"""What a server that died without cleaning up left behind, and how to end it.

A server's runtime folder (`/tmp/python-mcp-server-*`: connection files with their keys, ipc
sockets) names its owner in a file (`owner`: pid and start time, so a later process that reused
the pid is not taken for it) and holds a record (`<name>.proc`) of each kernel process it
started. When the owner is gone, the folder is stale: the processes still in each recorded
kernel's tree or session are killed and the folder is removed, by the server's watchdog at once
(`watchdog.py`) or by the next server that starts (`sweep_stale_folders`). A folder with no
owner record (one being created, or an older version's) and a folder of another user are never
touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from pathlib import Path

from python_mcp_server.procs.kill import kill_same
from python_mcp_server.procs.proc import family, read_stat

logger = logging.getLogger(__name__)

OWNER_FILE = "owner"
RECORD_SUFFIX = ".proc"


def _write(path: Path, pid: int, start: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{pid} {start}\n")
    tmp.replace(path)  # a reader never sees half a record


def _read(path: Path) -> tuple[int, int] | None:
    try:
        pid, start = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return None
    return pid, start


def claim(folder: Path) -> None:
    """Name this process as the owner of `folder`."""
    me = read_stat(os.getpid())
    _write(folder / OWNER_FILE, os.getpid(), me.start if me is not None else 0)


def owner_of(folder: Path) -> tuple[int, int] | None:
    """The pid and start time `folder`'s owner recorded, or None when it has no record."""
    return _read(folder / OWNER_FILE)


def is_running(pid: int, start: int) -> bool:
    """Whether the process `pid` that started at `start` still runs (not a zombie)."""
    now = read_stat(pid)
    return now is not None and now.alive and now.start == start


def record(folder: Path, name: str, pid: int, start: int) -> None:
    """Note a process the owner started (a kernel), to end if the owner dies before it does."""
    with contextlib.suppress(OSError):
        _write(folder / f"{name}{RECORD_SUFFIX}", pid, start)


def forget(folder: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        (folder / f"{name}{RECORD_SUFFIX}").unlink()


def recorded_trees(folder: Path) -> dict[int, int]:
    """The processes to end with the kernels recorded in `folder`, pid -> start time: each
    kernel still running, its descendants, and what is left in its session or process group
    (those outlive the kernel and keep its pid as their session id), started after it. Nothing
    of a kernel whose pid another process now has."""
    found: dict[int, int] = {}
    try:
        records = [p for p in folder.iterdir() if p.name.endswith(RECORD_SUFFIX)]
    except OSError:
        return found
    for path in records:
        entry = _read(path)
        if entry is None:
            continue
        pid, start = entry
        now = read_stat(pid)
        if now is not None and now.start != start:
            continue  # the pid is another process's now
        if now is not None and now.alive:
            found[pid] = start
        for proc in family(pid):
            if proc.start >= start and proc.alive:
                found[proc.pid] = proc.start
    found.pop(os.getpid(), None)
    return found


def end_leftovers(folder: Path) -> int:
    """Kill what the recorded kernels left running and remove `folder`; how many were killed."""
    killed = kill_same(recorded_trees(folder))
    shutil.rmtree(folder, ignore_errors=True)
    return killed


def _stale(folder: Path) -> bool:
    """Whether `folder` is ours (this user's, a real folder) and its recorded owner is gone."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    owner = owner_of(folder)
    return owner is not None and not is_running(*owner)


def sweep_stale_folders(parent: Path, prefix: str) -> int:
    """End and remove the folders `parent/<prefix>*` whose owner no longer runs; how many."""
    swept = 0
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return 0
    for folder in candidates:
        if _stale(folder):
            killed = end_leftovers(folder)
            swept += 1
            logger.info(
                "removed %s, left by a server that no longer runs (%d processes ended)",
                folder,
                killed,
            )
    return swept
