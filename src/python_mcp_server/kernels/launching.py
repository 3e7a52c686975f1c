"""How one local kernel process is launched: plainly, or inside the sandbox.

Either way jupyter_client starts it from a kernelspec of ours (never a user's own `python3` spec)
over the ipc transport. A plain kernel is the interpreter itself, moved into its cgroup v2 group
right after launch. A sandboxed kernel is bubblewrap around the interpreter: its kernelspec is
written per kernel (its argv names the kernel's own folder), and the launch joins the cgroups
between fork and exec, so nothing the kernel starts escapes its limits or its kill.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.kernels.backend import KernelLimits, KernelSpec
from python_mcp_server.procs import Cgroup, children, read_stat
from python_mcp_server.procs.confine import ConfinedCommand
from python_mcp_server.procs.limits import LimitGroup, own_process_limits
from python_mcp_server.procs.proc import command_name
from python_mcp_server.sandbox.launch import Sandbox

logger = logging.getLogger(__name__)

KERNEL_NAME = "python-mcp-server"


@dataclass
class KernelLaunch:
    """Where jupyter_client finds the kernelspec and puts the connection file, and what the
    launch does between fork and exec."""

    kernelspecs: Path
    connection_file: Path
    ip: Path
    env: dict[str, str] | None = None  # for the launching process (the join wrapper)
    cgroup: Cgroup | None = None  # joined by the launch itself
    limits: LimitGroup | None = None
    sandboxed: bool = False
    pass_fds: tuple[int, ...] = ()  # to inherit (the seccomp filter); closed once started
    release: Callable[[], None] | None = None


def kernel_argv(python: str, main: Path | None = None) -> list[str]:
    # history stays in memory: no agent code lands in anyone's ~/.ipython, and each cell skips a
    # SQLite write (about 1 ms on this project's machines)
    return [
        python,
        *(["-m", "ipykernel_launcher"] if main is None else [str(main)]),
        "-f",
        "{connection_file}",
        "--HistoryManager.enabled=False",
    ]


def write_kernelspec(folder: Path, argv: list[str], interrupt_mode: str = "signal") -> Path:
    """A kernelspec private to this server; returns the folder to give KernelSpecManager."""
    spec_dir = folder / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": argv,
        "display_name": "Python (python-mcp-server)",
        "language": "python",
        "interrupt_mode": interrupt_mode,
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return folder


def plain_launch(spec: KernelSpec, runtime_dir: Path, kernel_id: str) -> KernelLaunch:
    return KernelLaunch(
        kernelspecs=write_kernelspec(
            runtime_dir / "kernelspecs", kernel_argv(spec.python, spec.main)
        ),
        connection_file=runtime_dir / f"{kernel_id}.json",
        ip=runtime_dir / f"{kernel_id}-ipc",
    )


def sandboxed_launch(
    spec: KernelSpec,
    runtime_dir: Path,
    kernel_id: str,
    sandbox: Sandbox,
    cgroup_parent: Path | None,
) -> KernelLaunch:
    """The kernel's own folder, its limit groups and kill group, and its bwrap kernelspec."""
    session_dir = runtime_dir / kernel_id
    sandbox.prepare(session_dir)
    connection_file = session_dir / "kernel.json"
    name = f"{os.getpid()}-{kernel_id}"
    limits = spec.limits
    groups = (
        LimitGroup.create(
            sandbox.plan.limits, name, limits.memory_mb, limits.max_processes, limits.cpus
        )
        if sandbox.plan.limits.any
        else None
    )
    cgroup = Cgroup.create(cgroup_parent, name) if cgroup_parent is not None else None
    workspace = spec.workspace or spec.cwd
    launch = sandbox.launch(
        kernel_argv(spec.python, spec.main),
        python=spec.python,
        session_dir=session_dir,
        connection_file=connection_file,
        workspace=workspace,
        cwd=spec.cwd,
        env=spec.env,
        read_only=spec.read_only,
        groups=groups,
        extra_cgroups=[cgroup.path] if cgroup is not None else [],
    )
    return KernelLaunch(
        kernelspecs=write_kernelspec(runtime_dir / f"{kernel_id}-spec", launch.argv),
        connection_file=connection_file,
        ip=session_dir / "ipc",
        env=launch.env,
        cgroup=cgroup,
        limits=groups,
        sandboxed=True,
        pass_fds=launch.pass_fds,
        release=launch.close,
    )


def inner_kernel_pid(outer: int) -> int | None:
    """The kernel process inside a sandbox started as `outer` (bwrap): the first descendant
    that is not bwrap itself (its setpriv and prlimit have exec'd into the interpreter)."""
    level = [outer]
    for _ in range(8):
        found = []
        for pid in level:
            for child in children(pid):
                if command_name(child) != "bwrap":
                    return child
                found.append(child)
        level = found
    return None


def same_group(pid: int) -> list[int]:
    """`pid` and its descendants in its process group: what a Ctrl-C in a terminal reaches."""
    stat = read_stat(pid)
    if stat is None:
        return []
    found, level = [pid], [pid]
    while level:
        nxt = []
        for parent in level:
            for child in children(parent):
                child_stat = read_stat(child)
                if child_stat is not None and child_stat.pgid == stat.pgid:
                    found.append(child)
                    nxt.append(child)
        level = nxt
    return found


class ScriptConfinement:
    """Scripts run in the same sandbox as kernels, with the server's limits, under a supervisor
    (`supervisor`, a file run by the script's interpreter) that ends and counts what the script
    leaves running there."""

    def __init__(
        self,
        sandbox: Sandbox,
        python: str,
        workspace: Path,
        limits: KernelLimits,
        supervisor: Path,
    ) -> None:
        self._sandbox = sandbox
        self._python = python
        self._workspace = workspace
        self._limits = limits
        self._supervisor = supervisor

    def command(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> ConfinedCommand:
        python = python or self._python
        support = self._sandbox.plan.limits
        limits = self._limits
        name = f"{os.getpid()}-script-{secrets.token_hex(4)}"
        groups = (
            LimitGroup.create(support, name, limits.memory_mb, limits.max_processes, limits.cpus)
            if support.any
            else None
        )
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        supervised = [python, "-I", str(self._supervisor), str(write_end), "--", *argv]
        launch = self._sandbox.launch(
            supervised,
            python=python,
            session_dir=None,
            connection_file=None,
            workspace=self._workspace,
            cwd=cwd,
            env=env,
            read_only=[self._supervisor.parent, *read_only],
            groups=groups,
        )

        def left_running() -> int | None:
            try:
                return int(os.read(read_end, 64).decode() or "0")
            except (BlockingIOError, ValueError):
                return None  # the supervisor did not report (it was killed with the tree)

        def cleanup() -> None:
            launch.close()
            for fd in (read_end, write_end):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if groups is not None:
                groups.remove()

        return ConfinedCommand(
            launch.argv,
            None,
            cleanup,
            env=launch.env,
            wrappers=("bwrap", self._supervisor.name),
            pass_fds=(*launch.pass_fds, write_end),
            left_running=left_running,
        )


# ipykernel's own threads (heartbeat, IO, control, zmq...) and its launch: a kernel allowed
# fewer processes and threads than this cannot start
KERNEL_MIN_PROCESSES = 16


def start_failure(spec: KernelSpec, launch: KernelLaunch, exc: BaseException, tail: str) -> str:
    """Why a kernel did not start, and what to do, for the model (read before the launch's
    groups are removed)."""
    head = f"The Python kernel ({spec.python}) failed to start: {exc}."
    last = f" Its last output: {tail}" if tail else ""
    if isinstance(exc, OSError) and exc.errno == errno.EAGAIN:
        limits = "; ".join(
            f"{x.source} is {x.limit}" + (f", {x.in_use} in use" if x.in_use is not None else "")
            for x in own_process_limits()
        )
        return (
            f"The Python kernel ({spec.python}) could not start: this server has reached its "
            f"limit on processes and threads (starting one failed with EAGAIN"
            + (f"; {limits}" if limits else "")
            + "). Delete sessions you no longer need (delete_session) and let running scripts "
            "end, or give the server a higher process limit; then try again."
        )
    if launch.limits is not None and launch.limits.processes_refused() > 0:
        return (
            f"The Python kernel ({spec.python}) could not start within its limit of "
            f"{spec.limits.max_processes} processes and threads (the session's max_processes, "
            f"or the server's --kernel-max-processes): ipykernel alone needs about "
            f"{KERNEL_MIN_PROCESSES}. Create the session with a higher max_processes, or omit "
            "it for the server's limit."
        )
    if launch.sandboxed and "Permission denied" in tail:
        return (
            f"{head}{last} In the sandbox the kernel runs as uid 65534: its interpreter and the "
            "folders on the way to it must be readable by that user (or run the server with "
            "--sandbox off)."
        )
    return f"{head}{last} Check that ipykernel is installed for that interpreter."
