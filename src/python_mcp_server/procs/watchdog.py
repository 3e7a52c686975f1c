"""A watchdog that outlives its server only to clean up after it.

A server killed with SIGKILL runs no cleanup: its kernels' cgroups keep everything the kernels
started running (daemons, double forks, `setsid` children), and its runtime folder keeps the
connection files and their keys. So each kernel backend starts a watchdog: a shell blocked on
reading a pipe whose write end only the server holds, in a session of its own (a signal to the
server's terminal or process group does not reach it). A server that ends normally writes a line
and the shell exits. When the server dies the kernel closes the pipe: the read ends without a
line and the shell execs this module, which kills the server's cgroups and what its recorded
kernels left (`leftovers.py`), then removes the runtime folder. It costs the server one small
process (a shell, under 2 MB) and no Python until it is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from python_mcp_server.procs.cgroup import end_groups_of
from python_mcp_server.procs.kill import kill_same
from python_mcp_server.procs.leftovers import recorded_trees
from python_mcp_server.procs.proc import read_stat

logger = logging.getLogger(__name__)

# `read` fails only at the end of input without a line: the server died (a normal end writes one)
_WAIT = 'read -r line || exec "$@"'
_EXIT_WAIT_S = 5.0


class Watchdog:
    """The watchdog process of one kernel backend (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes], write_fd: int) -> None:
        self._process = process
        self._write_fd = write_fd

    @classmethod
    def start(cls, folder: Path, group_parents: Iterable[Path]) -> Watchdog | None:
        """Watch this server for `folder` (its runtime folder) and its cgroups under
        `group_parents`; None (logged) when no watchdog could start."""
        me = read_stat(os.getpid())
        cleanup = [sys.executable, "-m", __name__, str(os.getpid()), str(me.start if me else 0)]
        cleanup += [str(folder), *(str(p) for p in group_parents)]
        read_fd, write_fd = os.pipe()
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", _WAIT, "sh", *cleanup],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_fd)
            logger.warning("no watchdog (%s): a killed server would leave its kernels", exc)
            return None
        finally:
            os.close(read_fd)
        return cls(process, write_fd)

    async def aclose(self) -> None:
        """The server ends normally: tell the watchdog, and wait (bounded) until it has exited."""
        if self._write_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self._write_fd, b"\n")
            os.close(self._write_fd)
            self._write_fd = -1
        step = 0.005
        for _ in range(int(_EXIT_WAIT_S / step)):
            if self._process.poll() is not None:
                return
            await asyncio.sleep(step)
        self._process.kill()
        self._process.wait()


def clean_up_after(
    server_pid: int, server_start: int, folder: Path, parents: Sequence[Path]
) -> int:
    """End what the dead server `server_pid` left: the processes of its recorded kernels, its
    cgroups under `parents`, and its runtime `folder`. Returns how many processes were killed."""
    trees = recorded_trees(folder)  # before the groups die: a kernel's tree is walked through it
    now = read_stat(server_pid)
    if now is None or now.start == server_start:  # groups named by the pid are not another's
        for parent in parents:
            end_groups_of(parent, server_pid)
    killed = kill_same(trees)
    shutil.rmtree(folder, ignore_errors=True)
    return killed


def _server_gone(server_pid: int, timeout_s: float = _EXIT_WAIT_S) -> bool:
    """Whether our server died: we were handed to another parent. The end of input may arrive a
    moment before that happens, as the kernel closes a dying process's files first."""
    deadline = time.monotonic() + timeout_s
    while os.getppid() == server_pid:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def main(argv: Sequence[str]) -> int:
    server_pid, server_start, folder, *parents = argv
    if not _server_gone(int(server_pid)):
        return 0  # the server lives on: it closed its end by mistake, and cleans up itself
    clean_up_after(int(server_pid), int(server_start), Path(folder), [Path(p) for p in parents])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
