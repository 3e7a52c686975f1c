"""`ScriptRunner`: save Python scripts into `scripts/` and run them as bounded subprocesses.

A script runs with the kernel's interpreter (`config.kernel_python`), the workspace root as its
working directory, its own arguments as argv (never through a shell) and stdin closed. Output is
read as it comes and kept within `config.max_output_chars` per stream (head and tail). On timeout
the whole process tree is killed, grandchildren that started their own session included.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from python_mcp_server.config import SECRET_ENV_VARS, ServerConfig
from python_mcp_server.errors import ConfigError, InvalidArgumentError, ScriptNotFoundError
from python_mcp_server.procs import ProcessJail
from python_mcp_server.procs.confine import ConfinedCommand, Confinement
from python_mcp_server.workspace._output import BoundedBytes, OutputPipe
from python_mcp_server.workspace._proctree import ProcessTree
from python_mcp_server.workspace.manager import WorkspaceManager
from python_mcp_server.workspace.models import ScriptRun, WriteResult

logger = logging.getLogger(__name__)

SCRIPTS = "scripts"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_MAX_NAME = 100
_WATCH_S = 0.2
"""How often the process tree is sampled while a script runs."""
LINGER_S = 2.0
"""How long after the script exits its output may stay open (held by a background process)."""
_REAP_S = 5.0
"""Bound on waiting for killed processes and their pipes."""
MAX_SOURCE_BYTES = 1_000_000
"""How much of a script is read to find its inline metadata."""


def timed_out_note(limit_s: float, killed: int) -> str:
    return (
        f"The script ran past {limit_s:g} s and was killed, with every process it started "
        f"({killed} in all). Output up to that point is shown."
    )


def lingering_note(count: int) -> str:
    return (
        f"The script left {count} background process(es) holding its output open; they were killed."
    )


def left_running_note(count: int) -> str:
    return (
        f"{count} background process(es) the script left running were ended; run long-lived "
        "services from run_python_code instead."
    )


def check_run(
    config: ServerConfig, name: str, args: list[str] | None, timeout_s: float | None
) -> tuple[str, list[str], float]:
    """A run's script file name, argv and time limit, checked."""
    filename = script_name(name)
    argv = list(args or [])
    if any("\x00" in a for a in argv):
        raise InvalidArgumentError("A script argument contains a NUL byte; remove it.")
    limit = config.script_timeout_s
    timeout = limit if timeout_s is None else min(timeout_s, limit)
    if timeout <= 0:
        raise InvalidArgumentError(f"timeout_s must be more than 0, not {timeout_s}.")
    return filename, argv, timeout


def script_name(name: str) -> str:
    """A validated plain file name for `scripts/`, with '.py' added when missing."""
    rule = None
    if not name or not name.strip():
        rule = "it is empty"
    elif "/" in name or "\\" in name:
        rule = "it names a folder; scripts live directly in scripts/"
    elif len(name) > _MAX_NAME:
        rule = f"it is longer than {_MAX_NAME} characters"
    elif name in (".", "..") or not _NAME.fullmatch(name):
        rule = "use letters, digits, '_', '-' and '.', not starting with '.' or '-'"
    if rule:
        raise InvalidArgumentError(
            f"Script name {name!r} is refused: {rule}. Use a plain file name such as 'analysis.py'."
        )
    return name if name.endswith(".py") else name + ".py"


@dataclass
class ScriptOutcome:
    exit_code: int | None = None
    timed_out: bool = False
    killed: int = 0
    killed_pids: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


async def _watch(tree: ProcessTree) -> None:
    while True:
        tree.snapshot()
        await asyncio.sleep(_WATCH_S)


async def _supervise(
    proc: asyncio.subprocess.Process,
    pipes: tuple[OutputPipe, OutputPipe],
    limit_s: float,
    wrappers: tuple[str, ...] = (),
) -> ScriptOutcome:
    """Wait for the script and its output. Kill its tree on timeout, or when stray processes
    keep its output open after it exited."""
    tree = ProcessTree(proc.pid, {pipe.inode for pipe in pipes}, wrappers)
    readers = {asyncio.create_task(pipe.drain()) for pipe in pipes}
    watcher = asyncio.create_task(_watch(tree))
    outcome = ScriptOutcome()
    try:
        try:
            await asyncio.wait_for(proc.wait(), limit_s)
        except TimeoutError:
            outcome.timed_out = True
            outcome.killed = tree.kill()
            await asyncio.wait_for(proc.wait(), _REAP_S)
            outcome.notes.append(timed_out_note(limit_s, outcome.killed))
        _, pending = await asyncio.wait(readers, timeout=LINGER_S)
        if pending:
            lingering = tree.kill()
            outcome.killed += lingering
            outcome.notes.append(lingering_note(lingering))
            _, pending = await asyncio.wait(pending, timeout=_REAP_S)
        if pending:
            logger.warning("script pid %s: output still open after its tree was killed", proc.pid)
    finally:
        watcher.cancel()
        if proc.returncode is None:
            tree.kill()
        for task in readers:
            task.cancel()
        await asyncio.gather(watcher, *readers, return_exceptions=True)
    outcome.exit_code = proc.returncode
    outcome.killed_pids = tree.killed
    return outcome


class ScriptRunner:
    """Saves and runs the scripts in the workspace's `scripts/` folder."""

    def __init__(
        self,
        config: ServerConfig,
        workspace: WorkspaceManager,
        jail: Callable[[], ProcessJail] | None = None,
        confinement: Confinement | None = None,
    ) -> None:
        self.config = config
        self.workspace = workspace
        self._jail = jail
        self._confinement = confinement

    async def save(self, name: str, code: str) -> WriteResult:
        """Write `code` to `scripts/<name>` (replacing a script of that name)."""
        filename = script_name(name)
        return await self.workspace.write(f"{SCRIPTS}/{filename}", code, "text", overwrite=True)

    def _env(self, root: Path, confined: bool) -> dict[str, str]:
        """The script's environment: the server's less its secrets; in the sandbox, only ours
        (the sandbox passes on what kernels get)."""
        ours = {
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            "PYTHON_MCP_SERVER_WORKSPACE": str(root),
        }
        if confined:
            return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **ours}
        return {k: v for k, v in os.environ.items() if k not in SECRET_ENV_VARS} | ours

    def _command(
        self, argv: list[str], root: Path, read_only: tuple[Path, ...] = ()
    ) -> ConfinedCommand:
        """The argv to run: the script itself, or wrapped in the kernels' sandbox."""
        if self._confinement is None:
            return ConfinedCommand(argv)
        env = self._env(root, confined=True)
        del env["PATH"]
        return self._confinement.command(
            argv, cwd=root, env=env, python=argv[0], read_only=read_only
        )

    def path(self, name: str) -> Path:
        """Where `scripts/<name>` is; raises if there is no such script."""
        filename = script_name(name)
        path = self.workspace.resolve(f"{SCRIPTS}/{filename}", need_name=True)
        if not path.is_file():
            raise ScriptNotFoundError(filename)
        return path

    async def source(self, name: str) -> str:
        """The start of `scripts/<name>` (`MAX_SOURCE_BYTES`), as text; raises if there is no
        such script."""
        path = self.path(name)

        def read() -> str:
            with path.open("rb") as f:
                return f.read(MAX_SOURCE_BYTES).decode("utf-8", "replace")

        return await asyncio.to_thread(read)

    async def run(
        self,
        name: str,
        args: list[str] | None = None,
        timeout_s: float | None = None,
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> ScriptRun:
        """Run `scripts/<name>` and wait for it, at most `timeout_s` seconds, with the kernels'
        interpreter or `python` (an environment of its own, whose layers `read_only` names)."""
        filename, argv, timeout = check_run(self.config, name, args, timeout_s)
        path = self.workspace.resolve(f"{SCRIPTS}/{filename}", need_name=True)
        if not path.is_file():
            raise ScriptNotFoundError(filename)
        root = self.workspace.root
        python = python or self.config.kernel_python
        if not os.access(python, os.X_OK):
            raise ConfigError(  # checked first: inside the sandbox it would be bwrap's exit status
                f"Could not start the kernel's interpreter {python!r} to run the script: it does "
                "not exist or is not executable. The server's kernel interpreter setting needs "
                "fixing; run the code with run_python_code meanwhile."
            )
        command = self._command([python, str(path), *argv], root, read_only)
        budget = self.config.max_output_chars
        out, err = OutputPipe(budget), OutputPipe(budget)
        started = time.monotonic()
        jail = self._jail() if self._jail is not None else None
        try:
            await out.connect()
            await err.connect()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command.argv,
                    cwd=root,
                    env=self._env(root, confined=self._confinement is not None) | command.env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out.write_fd,
                    stderr=err.write_fd,
                    start_new_session=True,
                    preexec_fn=_both(jail.before_start() if jail else None, command.preexec),
                    pass_fds=command.pass_fds,
                )
            except OSError as exc:
                raise ConfigError(
                    f"Could not start the kernel's interpreter {self.config.kernel_python!r} to "
                    f"run the script: {exc.strerror or exc}. The server's kernel interpreter "
                    "setting needs fixing; run the code with run_python_code meanwhile."
                ) from exc
            finally:
                out.close_write()
                err.close_write()
            logger.info("script %s started as pid %s", filename, proc.pid)
            outcome = await _supervise(proc, (out, err), timeout, command.wrappers)
            # processes the tree kill already ended may still be leaving the jail: not counted twice
            left = await jail.end(outcome.killed_pids, command.wrappers) if jail is not None else 0
            reported = command.left_running() if command.left_running is not None else None
            if reported is not None:  # the confinement ended them, and counted exactly
                left = reported
            if left:
                outcome.killed += left
                outcome.notes.append(left_running_note(left))
        finally:
            if jail is not None:  # a failed start or a cancel: end whatever is in the jail
                await asyncio.shield(jail.end())
            command.cleanup()
            out.close()
            err.close()
        return script_report(
            filename, outcome, (out.sink, err.sink), budget, time.monotonic() - started
        )


def _both(
    first: Callable[[], None] | None, second: Callable[[], None] | None
) -> Callable[[], None] | None:
    """One `preexec_fn` that runs both (either may be None)."""
    if first is None or second is None:
        return first or second

    def both() -> None:
        first()
        second()

    return both


def script_report(
    filename: str,
    outcome: ScriptOutcome,
    sinks: tuple[BoundedBytes, BoundedBytes],
    budget: int,
    took_s: float,
) -> ScriptRun:
    out, err = sinks
    notes = outcome.notes
    if not outcome.timed_out and outcome.exit_code:
        see = "; see stderr." if err.render() else " and wrote nothing to stderr."
        notes.append(f"The script exited with code {outcome.exit_code}{see}")
    if out.truncated or err.truncated:
        notes.append(
            f"Long output was cut to {budget} bytes per stream (head and tail kept); write "
            "large results to a file in outputs/ instead."
        )
    return ScriptRun(
        name=filename,
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        duration_ms=round(took_s * 1000, 1),
        stdout=out.render(),
        stderr=err.render(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        killed_processes=outcome.killed,
        message=" ".join(notes) or None,
    )
