"""The seam between sessions and wherever kernels live.

`SessionManager` talks only to these protocols. `LocalBackend` runs kernels on this machine
(jupyter_client); `GatewayBackend` runs them on a Jupyter gateway (REST and a websocket).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from python_mcp_server.kernels.messages import Output
from python_mcp_server.procs import ProcessJail
from python_mcp_server.procs.confine import Confinement

OutputCallback = Callable[[Output], None]


@dataclass(frozen=True)
class KernelLimits:
    """What one sandboxed kernel may use; 0 or None means no limit."""

    memory_mb: int = 0
    max_processes: int = 0
    cpus: float | None = None


@dataclass(frozen=True)
class KernelSpec:
    """How to start one kernel."""

    python: str
    cwd: Path
    env: dict[str, str]
    start_timeout_s: float = 60.0
    unset_env: tuple[str, ...] = ()  # server variables the kernel must not see (secrets)
    workspace: Path | None = None  # read-write in a sandbox (default: cwd)
    read_only: tuple[Path, ...] = ()  # further folders a sandboxed kernel needs to read
    limits: KernelLimits = KernelLimits()
    # the kernel's main program, run by path in place of `-m ipykernel_launcher` (in a sandbox,
    # in one of the `read_only` folders)
    main: Path | None = None


@dataclass(frozen=True)
class ExitInfo:
    """How a kernel process ended. `memory_limit_mb` is set when its memory limit killed it."""

    returncode: int | None
    stderr_tail: str = ""
    memory_limit_mb: int | None = None
    reason: str | None = None  # how it ended, when no exit status tells (a remote kernel)
    removed: bool = False  # its host removed it (deleted or culled on a gateway), not a crash

    @property
    def signal(self) -> int | None:
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None

    def describe(self) -> str:
        import signal as _signal

        if self.reason is not None:
            return self.reason
        if self.memory_limit_mb is not None:
            return (
                f"ran out of memory and was stopped (out of memory: this session may use "
                f"{self.memory_limit_mb} MB; use less, or ask for a server with a higher "
                "--kernel-memory-mb)"
            )
        if self.signal is not None:
            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            text = f"was killed by {name}"
            if self.signal == _signal.SIGKILL:
                text += " (killed from outside, or out of memory)"
        elif self.returncode is None:
            text = "exited (exit status unknown)"
        else:
            text = f"exited with code {self.returncode}"
        return text


@dataclass(frozen=True)
class Reply:
    """A shell reply: its `content` and the status; `made_at`, when the kernel made it (its
    header's date, in seconds since the epoch; the kernel shares the server's clock)."""

    status: str
    content: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    made_at: float | None = None


def epoch(stamp: object) -> float | None:
    """A Jupyter ISO 8601 timestamp in seconds since the epoch; None if it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)  # with a "Z" since Python 3.11
    except ValueError:
        return None
    if moment.tzinfo is None:  # Jupyter stamps are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class ExecutionRun(Protocol):
    """One submitted cell. `wait` may be called again after a timeout cut an earlier wait short."""

    msg_id: str

    async def wait(self) -> Reply:
        """Wait until the reply and the final idle status have both arrived.

        Raises:
            KernelDiedError: the kernel process ended before the cell finished.
        """
        ...

    async def wait_begun(self) -> None:
        """Wait until the kernel has begun running the cell (its `execute_input`), or is done
        with it: an interrupt sent before that is ignored by an idle kernel.

        Raises:
            KernelDiedError: the kernel process ended first.
        """
        ...

    async def wait_idle(self) -> None:
        """Wait until the kernel has finished with the request (its idle status), reply or not:
        a request whose handling failed inside the kernel's own code (an interrupt that landed
        there, say) goes idle without a reply.

        Raises:
            KernelDiedError: the kernel process ended first.
        """
        ...


class KernelHandle(Protocol):
    """One running kernel."""

    @property
    def pid(self) -> int | None: ...

    @property
    def python(self) -> str: ...

    def exit_info(self) -> ExitInfo | None:
        """None while the process lives; how it ended otherwise."""
        ...

    def take_late_output(self) -> str:
        """Output printed after its cell had finished (threads, background processes), once."""
        ...

    async def wait_exit(self) -> ExitInfo:
        """Wait until the kernel process has ended; how it ended."""
        ...

    async def submit(
        self,
        code: str,
        on_output: OutputCallback | None = None,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> ExecutionRun: ...

    async def request(
        self, msg_type: str, content: dict[str, Any], timeout_s: float, *, control: bool = False
    ) -> Reply: ...

    async def interrupt(self) -> None: ...

    async def aclose(self) -> None:
        """Stop the kernel and everything in its process group."""
        ...

    async def release(self) -> None:
        """Let go of the kernel as the server stops: a local one is stopped (`aclose`); one on a
        gateway is left running there for the other servers that share it."""
        ...


class KernelBackend(Protocol):
    remote: bool
    """Kernels run on another machine: they see neither this server's disk nor its temporary
    folders, so files reach them through a kernel (`kernel_ext.workspace_files`)."""

    async def start(self, spec: KernelSpec) -> KernelHandle: ...

    def jail_factory(self) -> Callable[[], ProcessJail] | None:
        """Makes a jail that holds a helper process and all it starts, or None if unsupported."""
        ...

    def confinement(
        self, python: str, workspace: Path, limits: KernelLimits, supervisor: Path
    ) -> Confinement | None:
        """Runs helper processes (scripts) in the kernels' sandbox, under `supervisor` (a
        program the interpreter runs), or None when unsandboxed."""
        ...

    async def aclose(self) -> None: ...
