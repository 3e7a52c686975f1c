"""Killing processes we found earlier, and only those: a pid is signalled while it still has the
start time it had when found, so a process that reused the pid is never touched."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping

from python_mcp_server.procs.proc import start_time

logger = logging.getLogger(__name__)

_ROUNDS = 20


def kill_same(procs: Mapping[int, int]) -> int:
    """SIGKILL each process (pid -> start time) that is still the same live process. Returns how
    many were signalled."""
    killed = 0
    for pid, start in procs.items():
        if start_time(pid) != start:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            continue
        except PermissionError:
            logger.warning("not allowed to kill pid %s left by a kernel", pid)
    return killed


def freeze_and_kill(
    find: Callable[[], set[int]], known: Mapping[int, int], group: int
) -> dict[int, int]:
    """Stop every process `find` names, asking again until it names no new one, so nothing forks
    past us; then kill the process group `group` and every process stopped.

    A pid in `known` (pid -> start time) is left alone unless it still has that start time.
    Returns the processes stopped and killed, pid -> start time.
    """
    stopped: dict[int, int] = {}
    seen: set[int] = set()
    for _ in range(_ROUNDS):
        new = find() - seen
        if not new:
            break
        seen |= new
        for pid in new:
            start = start_time(pid)
            if start is None or known.get(pid, start) != start:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
                stopped[pid] = start
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    for pid, start in stopped.items():
        if start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return stopped
