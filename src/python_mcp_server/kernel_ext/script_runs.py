"""Scripts run by a kernel for a server that cannot start processes where the workspace is.

The kernel side of `run_script` with kernels on a gateway: `start` runs `scripts/<name>` with
the kernel's own interpreter, the workspace as working directory, stdin closed and its own
session (so its process group is its own), and reads its output in two threads, keeping the
head and the tail of each stream within the server's budget. The server then asks `poll` until
the run is over, and calls `kill` when its time is up; neither blocks the kernel, so the other
file operations go on meanwhile. The processes the script starts are remembered as they appear
(`/proc`, with their start time, so a recycled pid is never killed), and the ones holding its
output open are found by the pipes' inodes, so a kill reaches the ones that left its process
group too; those still running once the script has exited are ended, and counted. (A daemon
that detached before it was ever seen, and let go of the output, escapes: the gateway's
container is what bounds it.)

Standard library only, like the rest of the package.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Any

_REAP_S = 5.0
_runs: dict[str, Run] = {}


class Kept:
    """The head and the tail of a byte stream within `budget`; the middle is counted."""

    def __init__(self, budget: int) -> None:
        self.head_budget = budget // 2
        self.tail_budget = budget - self.head_budget
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def append(self, piece: bytes) -> None:
        self.total += len(piece)
        room = self.head_budget - len(self.head)
        if room > 0:
            self.head += piece[:room]
            piece = piece[room:]
        if piece:
            self.tail += piece
            if len(self.tail) > 2 * self.tail_budget:
                del self.tail[: len(self.tail) - self.tail_budget]

    def report(self) -> list[Any]:
        tail = bytes(self.tail[-self.tail_budget :] if self.tail_budget else b"")
        return [
            base64.b64encode(bytes(self.head)).decode(),
            base64.b64encode(tail).decode(),
            self.total,
        ]


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, start time) of a live process; None when it is gone or a
    zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def _holders(inodes: set[int]) -> set[int]:
    """The processes, other than this one, that hold one of the pipes `inodes` open."""
    wanted = {f"pipe:[{inode}]" for inode in inodes}
    found = set()
    me = os.getpid()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                fds = os.listdir(f"/proc/{name}/fd")
            except OSError:
                continue
            for fd in fds:
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{name}/fd/{fd}") in wanted:
                        found.add(int(name))
                        break
    return found


def _processes() -> dict[int, tuple[int, int, int]]:
    found = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = _stat(int(name))
                if st is not None:
                    found[int(name)] = st
    return found


class Run:
    """One script process, its output, and the processes it started."""

    def __init__(self, proc: subprocess.Popen[bytes], budget: int) -> None:
        self.proc = proc
        self.out, self.err = Kept(budget), Kept(budget)
        self.known: dict[int, int] = {}  # pid -> start time, of the script and its descendants
        self.exited_at: float | None = None
        self.inodes = {
            os.fstat(pipe.fileno()).st_ino for pipe in (proc.stdout, proc.stderr) if pipe
        }
        self.readers = [
            threading.Thread(target=self._drain, args=(pipe, kept), daemon=True)
            for pipe, kept in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()
        self.look()

    @staticmethod
    def _drain(pipe: Any, kept: Kept) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(pipe.fileno(), 65536):
                kept.append(chunk)
        with contextlib.suppress(OSError):
            pipe.close()

    def look(self) -> None:
        """Remember the descendants alive now (they may leave the group, or lose their parent)."""
        table = _processes()
        if self.proc.pid in table:
            self.known.setdefault(self.proc.pid, table[self.proc.pid][2])
        grew = True
        while grew:
            grew = False
            for pid, (ppid, group, started) in table.items():
                if (ppid in self.known or group == self.proc.pid) and pid not in self.known:
                    self.known[pid] = started
                    grew = True

    def _alive(self, *, holders: bool) -> set[int]:
        """The script's processes alive now (seen before, or holding its output open)."""
        self.look()
        alive = set()
        for pid, started in self.known.items():
            st = _stat(pid)
            if st is not None and st[2] == started:
                alive.add(pid)
        if holders:
            alive |= _holders(self.inodes)
        return alive

    def kill(self) -> int:
        """End the process group, every descendant seen and every process holding the output
        open; how many were alive."""
        alive = self._alive(holders=True)
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return len(alive)

    def end_left(self) -> int:
        """The script exited: end the processes it left running; how many."""
        return self.kill() if self._alive(holders=False) else 0

    def reading(self) -> bool:
        return any(reader.is_alive() for reader in self.readers)

    def result(self, lingering: int = 0, killed: int = 0, left: int = 0) -> dict[str, Any]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(_REAP_S)
        for reader in self.readers:
            reader.join(_REAP_S)
        return {
            "done": True,
            "exit_code": self.proc.returncode,
            "out": self.out.report(),
            "err": self.err.report(),
            "lingering": lingering,
            "killed": killed,
            "left": left,
        }


def start(path: str, argv: list[str], cwd: str, budget: int) -> str:
    """Start the script at `path`; the id to poll it by."""
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", PYTHON_MCP_SERVER_WORKSPACE=cwd)
    proc = subprocess.Popen(
        [sys.executable, path, *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    run_id = secrets.token_hex(8)
    _runs[run_id] = Run(proc, budget)
    return run_id


def poll(run_id: str, linger_s: float) -> dict[str, Any] | None:
    """`{"done": false}` while the script runs; its result once it ended and its output closed
    (or, `linger_s` after it exited, once the processes holding its output open were killed).
    None for a run this kernel does not have."""
    run = _runs.get(run_id)
    if run is None:
        return None
    run.look()
    if run.proc.poll() is None:
        return {"done": False}
    if run.reading():
        now = time.monotonic()
        if run.exited_at is None:
            run.exited_at = now
        if now - run.exited_at < linger_s:
            return {"done": False}
        del _runs[run_id]
        return run.result(lingering=run.kill())
    del _runs[run_id]
    return run.result(left=run.end_left())


def kill(run_id: str) -> dict[str, Any] | None:
    """Kill the script and every process it started; its result (`killed`: how many). None
    when the run is over and its result was already taken."""
    run = _runs.pop(run_id, None)
    return run.result(killed=run.kill()) if run is not None else None
