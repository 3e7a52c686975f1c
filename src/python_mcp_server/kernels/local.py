"""`LocalBackend`: kernels as child processes of this server, through jupyter_client's async API.

This module and its siblings in `kernels/` are the only code that imports jupyter_client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from python_mcp_server.errors import KernelBusyError, KernelDiedError, KernelStartError
from python_mcp_server.kernels.backend import (
    ExitInfo,
    KernelLimits,
    KernelSpec,
    OutputCallback,
    Reply,
    epoch,
)
from python_mcp_server.kernels.channels import Channel
from python_mcp_server.kernels.launching import (
    KERNEL_NAME,
    KernelLaunch,
    ScriptConfinement,
    inner_kernel_pid,
    plain_launch,
    same_group,
    sandboxed_launch,
    start_failure,
)
from python_mcp_server.kernels.messages import StreamOutput, parse_iopub
from python_mcp_server.kernels.reaper import kernel_tree
from python_mcp_server.kernels.runs import KernelRun
from python_mcp_server.kernels.wire import Wire
from python_mcp_server.procs import (
    Cgroup,
    ProcessJail,
    find_cgroup_parent,
    jail_factory,
    kill_same,
    read_stat,
    sweep_stale_cgroups,
)
from python_mcp_server.procs.leftovers import claim, forget, record, sweep_stale_folders
from python_mcp_server.procs.limits import sweep_stale_limit_groups
from python_mcp_server.procs.watchdog import Watchdog
from python_mcp_server.sandbox.launch import Sandbox
from python_mcp_server.text import HeadTail

logger = logging.getLogger(__name__)

_WATCH_INTERVAL_S = 0.2
_DRAIN_S = 0.5
_LATE_OUTPUT_CHARS = 10_000
_SHUTDOWN_TIMEOUT_S = 10.0
RUNTIME_PREFIX = "python-mcp-server-"


class LocalKernelHandle:
    """One ipykernel process and its client. Start with `LocalBackend.start`."""

    def __init__(
        self,
        spec: KernelSpec,
        runtime_dir: Path,
        cgroup_parent: Path | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self._spec = spec
        self._sandbox = sandbox
        self._launch: KernelLaunch | None = None
        self._id = secrets.token_hex(6)
        self._dir = runtime_dir
        self._cgroup_parent = cgroup_parent
        self._cgroup: Cgroup | None = None
        self._pid: int | None = None
        self._pid_start: int | None = None
        self._km: AsyncKernelManager | None = None
        self._kc: AsyncKernelClient | None = None
        self._wire: Wire | None = None
        self._channels: dict[str, Channel] = {}
        self._runs: dict[str, KernelRun] = {}
        self._requests: dict[str, asyncio.Future[Reply]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._exit: ExitInfo | None = None
        self._ended = asyncio.Event()
        self._late = HeadTail(_LATE_OUTPUT_CHARS, "")
        self._closed = False
        self._stderr_path = runtime_dir / f"{self._id}.stderr"

    @property
    def pid(self) -> int | None:
        """The kernel's pid; after it ended, the pid it had."""
        return self._pid

    @property
    def python(self) -> str:
        return self._spec.python

    def exit_info(self) -> ExitInfo | None:
        return self._exit

    async def wait_exit(self) -> ExitInfo:
        await self._ended.wait()
        assert self._exit is not None
        return self._exit

    @property
    def closed(self) -> bool:
        return self._closed

    def _process(self) -> subprocess.Popen[bytes] | None:
        if self._km is None or self._km.provisioner is None:
            return None
        proc = getattr(self._km.provisioner, "process", None)
        return proc if isinstance(proc, subprocess.Popen) else None

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    def _contain(self, launch: KernelLaunch) -> None:
        """Give the kernel (already in its own session and process group) its own cgroup, before
        it can run any user code, so `aclose` can end everything it starts. A sandboxed kernel
        joined its groups between fork and exec."""
        proc = self._process()
        self._pid = proc.pid if proc is not None else None
        if self._pid is None:
            return
        stat = read_stat(self._pid)
        self._pid_start = stat.start if stat is not None else None
        if self._pid_start is not None:  # for the watchdog, should the server die first
            record(self._dir, self._id, self._pid, self._pid_start)
        if launch.sandboxed:
            self._cgroup = launch.cgroup
            return
        if self._cgroup_parent is None:
            return
        group = Cgroup.create(self._cgroup_parent, f"{os.getpid()}-{self._id}")
        if group is not None and group.add(self._pid):
            self._cgroup = group

    def _find_inner_kernel(self) -> None:
        """In a sandbox the process launched is bubblewrap: report, watch and signal the
        interpreter inside it instead."""
        if self._launch is None or not self._launch.sandboxed or self._pid is None:
            return
        inner = inner_kernel_pid(self._pid)
        if inner is not None:
            stat = read_stat(inner)
            self._pid, self._pid_start = inner, stat.start if stat is not None else None

    def _prepare_launch(self) -> KernelLaunch:
        if self._sandbox is None:
            return plain_launch(self._spec, self._dir, self._id)
        return sandboxed_launch(self._spec, self._dir, self._id, self._sandbox, self._cgroup_parent)

    def _launch_env(self, launch: KernelLaunch) -> dict[str, str]:
        if launch.sandboxed:  # bwrap rebuilds the kernel's environment from nothing
            return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(launch.env or {})}
        hidden = set(self._spec.unset_env)
        return {k: v for k, v in os.environ.items() if k not in hidden} | self._spec.env

    async def _start(self) -> None:
        launch = self._launch = self._prepare_launch()
        ksm = KernelSpecManager(kernel_dirs=[str(launch.kernelspecs)], ensure_native_kernel=False)
        km = AsyncKernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=ksm,
            transport="ipc",
            ip=str(launch.ip),
            connection_file=str(launch.connection_file),
        )
        self._km = km
        extra: dict[str, Any] = {}
        if launch.pass_fds:
            extra["pass_fds"] = launch.pass_fds
        try:
            with self._stderr_path.open("wb") as stderr:
                try:
                    await km.start_kernel(
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        stdin=subprocess.DEVNULL,
                        cwd=str(self._spec.cwd),
                        env=self._launch_env(launch),
                        **extra,
                    )
                finally:
                    if launch.release is not None:
                        launch.release()
            self._contain(launch)
            kc = km.client()
            self._kc = kc
            self._wire = Wire(kc.session)
            # no limit on the messages queued for us: at the default (1000) a cell that displays
            # quickly while the server is busy for a moment loses outputs, and even the idle
            # status that ends it (the cell then runs into its time limit)
            kc.context.setsockopt(zmq.RCVHWM, 0)
            kc.start_channels(hb=False)
            await kc.wait_for_ready(timeout=self._spec.start_timeout_s)
            self._find_inner_kernel()
            if self._sandbox is not None:
                self._sandbox.seal(launch.connection_file.parent, launch.connection_file)
        except (RuntimeError, OSError, TimeoutError) as exc:
            why = start_failure(self._spec, launch, exc, self._stderr_tail())
            await self.aclose()
            raise KernelStartError(why) from exc
        loop = asyncio.get_running_loop()
        self._channels = {
            "iopub": Channel(kc.iopub_channel.socket, self._on_iopub, loop),
            "shell": Channel(kc.shell_channel.socket, self._on_reply, loop),
            "control": Channel(kc.control_channel.socket, self._on_reply, loop),
        }
        self._tasks = [loop.create_task(self._watch_process())]

    def _stderr_tail(self, limit: int = 1500) -> str:
        try:
            data = self._stderr_path.read_bytes()[-limit:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def _parse(self, frames: list[bytes]) -> dict[str, Any] | None:
        """A well-formed message, or None (logged) for one to drop: never let one message stop
        the reading."""
        assert self._wire is not None
        try:
            return self._wire.parse(frames)
        except ValueError as exc:  # WireError or bad JSON
            logger.warning("kernel pid %s: dropped a message: %s", self._pid, exc)
            return None

    def _on_iopub(self, frames: list[bytes]) -> None:
        msg = self._parse(frames)
        if msg is None:
            return
        parent = msg.get("parent_header", {}).get("msg_id")
        run = self._runs.get(parent) if parent else None
        if run is not None:
            run._feed_iopub(msg)
            if run._done.is_set():
                self._runs.pop(parent, None)
            return
        out = parse_iopub(msg)
        if isinstance(out, StreamOutput):  # a thread or child printing after its cell ended
            self._late.append(out.text)

    def take_late_output(self) -> str:
        late, self._late = self._late, HeadTail(_LATE_OUTPUT_CHARS, "")
        return late.render()

    def _on_reply(self, frames: list[bytes]) -> None:
        msg = self._parse(frames)
        if msg is None:
            return
        parent = msg.get("parent_header", {}).get("msg_id")
        content = msg.get("content", {})
        reply = Reply(
            status=str(content.get("status", "")),
            content=content,
            metadata=dict(msg.get("metadata") or {}),
            made_at=epoch(msg.get("header", {}).get("date")),
        )
        run = self._runs.get(parent) if parent else None
        if run is not None:
            run._feed_reply(reply)
            if run._done.is_set():
                self._runs.pop(parent, None)
            return
        fut = self._requests.pop(parent, None) if parent else None
        if fut is not None and not fut.done():
            fut.set_result(reply)

    async def _watch_process(self) -> None:
        while True:
            proc = self._process()
            code = proc.poll() if proc is not None else None
            if code is not None:
                await self._drain_iopub()
                self._mark_dead(self._exit_info(code))
                return
            await asyncio.sleep(_WATCH_INTERVAL_S)

    def _exit_info(self, code: int) -> ExitInfo:
        """How the kernel ended. bubblewrap reports a kernel killed by a signal as 128 + the
        signal; the memory group's OOM counter tells a kill for memory from one from outside."""
        launch = self._launch
        if launch is None or not launch.sandboxed:
            return ExitInfo(code, self._stderr_tail())
        if code > 128:
            code = -(code - 128)
        limit = self._spec.limits.memory_mb
        oom = launch.limits is not None and limit and launch.limits.oom_kills() > 0
        return ExitInfo(code, self._stderr_tail(), memory_limit_mb=limit if oom else None)

    async def _drain_iopub(self) -> None:
        """Let the reader take what the dead kernel already sent, so its last output is kept."""
        iopub = self._channels.get("iopub")
        if iopub is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_S
        while loop.time() < deadline:
            await asyncio.sleep(0.01)
            if not iopub.pending():
                return

    def _mark_dead(self, info: ExitInfo) -> None:
        if self._exit is not None:
            return
        self._exit = info
        self._ended.set()
        if not self._closed:
            logger.warning("kernel pid %s %s", self.pid, info.describe())
        for run in self._runs.values():
            run._kill(info)
        self._runs.clear()
        for fut in self._requests.values():
            if not fut.done():
                fut.set_exception(KernelDiedError(f"The kernel {info.describe()}."))
        self._requests.clear()

    def _check_alive(self) -> Wire:
        if self._exit is not None:
            raise KernelDiedError(f"The kernel {self._exit.describe()}.")
        if self._wire is None or not self._channels or self._closed:
            raise RuntimeError("kernel handle is not started or already closed")
        return self._wire

    async def submit(
        self,
        code: str,
        on_output: OutputCallback | None = None,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> KernelRun:
        wire = self._check_alive()
        msg_id, frames = wire.request(
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": user_expressions or {},
                "allow_stdin": False,
                "stop_on_error": False,
            },
        )
        run = KernelRun(msg_id, on_output)
        self._runs[msg_id] = run
        await self._channels["shell"].send(frames)
        return run

    async def request(
        self, msg_type: str, content: dict[str, Any], timeout_s: float, *, control: bool = False
    ) -> Reply:
        wire = self._check_alive()
        msg_id, frames = wire.request(msg_type, content)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._requests[msg_id] = fut
        await self._channels["control" if control else "shell"].send(frames)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError as exc:
            raise KernelBusyError(
                f"The kernel did not answer {msg_type} within {timeout_s:g} s; it is busy or hung. "
                "Call interrupt_kernel, or restart_kernel if that does not help."
            ) from exc
        finally:
            self._requests.pop(msg_id, None)

    async def interrupt(self) -> None:
        self._check_alive()
        assert self._km is not None
        if self._launch is not None and self._launch.sandboxed and self._pid is not None:
            # signalling bubblewrap's process group would end the sandbox: signal the kernel
            # and what it started in its group, as a Ctrl-C would
            for pid in same_group(self._pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGINT)
            return
        await self._km.interrupt_kernel()

    async def release(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for channel in self._channels.values():
            channel.close()
        if self._kc is not None:
            self._kc.stop_channels()
        tree = kernel_tree(self._pid, self._pid_start) if self._pid is not None else {}
        km = self._km
        if km is not None and km.has_kernel:
            try:
                await asyncio.wait_for(km.shutdown_kernel(now=True), _SHUTDOWN_TIMEOUT_S)
            except (TimeoutError, RuntimeError, OSError):
                logger.exception("kernel shutdown failed; killing its process")
                proc = self._process()
                if proc is not None:
                    with contextlib.suppress(OSError):
                        proc.kill()
        if self._cgroup is not None:
            await self._cgroup.close()
        if self._launch is not None and self._launch.sandboxed:
            if self._launch.limits is not None:
                self._launch.limits.remove()
            shutil.rmtree(self._dir / self._id, ignore_errors=True)
            shutil.rmtree(self._dir / f"{self._id}-spec", ignore_errors=True)
        if kill_same(tree):
            logger.info("killed processes left by kernel pid %s", self._pid)
        forget(self._dir, self._id)
        info = self._exit or ExitInfo(None)
        self._mark_dead(info)
        with contextlib.suppress(OSError):
            self._stderr_path.unlink()


class LocalBackend:
    """Starts kernels on this machine. Owns a private runtime folder for connection files, and a
    watchdog that ends its kernels and removes the folder should the server be killed.

    With `use_cgroups` (the default) each kernel gets a cgroup v2 group when the machine allows
    it; otherwise, or when it does not, kernels are ended with a process-tree kill.
    """

    remote = False

    def __init__(
        self,
        *,
        use_cgroups: bool = True,
        sandbox: Callable[[Path], Sandbox] | None = None,
    ) -> None:
        top = Path(tempfile.gettempdir())
        sweep_stale_folders(top, RUNTIME_PREFIX)  # of servers killed before they cleaned up
        self._dir = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX, dir=top))
        claim(self._dir)
        self.sandbox = sandbox(self._dir) if sandbox is not None else None
        self._handles: weakref.WeakSet[LocalKernelHandle] = weakref.WeakSet()
        self.cgroup_parent = find_cgroup_parent() if use_cgroups else None
        if self.cgroup_parent is not None:
            sweep_stale_cgroups(self.cgroup_parent)
        limits = self.sandbox.plan.limits if self.sandbox is not None else None
        if limits is not None and limits.any:
            sweep_stale_limit_groups(limits)
        logger.debug("kernel cgroups: %s", self.cgroup_parent or "unavailable")
        parents = [self.cgroup_parent] if self.cgroup_parent is not None else []
        if limits is not None:
            parents += [p for p in (limits.memory, limits.pids, limits.cpu) if p is not None]
        self._watchdog = Watchdog.start(self._dir, dict.fromkeys(parents))

    def jail_factory(self) -> Callable[[], ProcessJail] | None:
        """Cgroup jails for other processes the server starts (scripts), when cgroups work."""
        return jail_factory(self.cgroup_parent)

    def confinement(
        self, python: str, workspace: Path, limits: KernelLimits, supervisor: Path
    ) -> ScriptConfinement | None:
        if self.sandbox is None:
            return None
        return ScriptConfinement(self.sandbox, python, workspace, limits, supervisor)

    async def start(self, spec: KernelSpec) -> LocalKernelHandle:
        handle = LocalKernelHandle(spec, self._dir, self.cgroup_parent, self.sandbox)
        self._handles.add(handle)
        try:
            await handle.start()
        except BaseException:
            self._handles.discard(handle)
            raise
        return handle

    async def aclose(self) -> None:
        """Close any kernel still open (a safety net: the session manager closes its own)."""
        open_handles = [h for h in self._handles if not h.closed]
        self._handles.clear()
        if open_handles:
            with anyio.move_on_after(_SHUTDOWN_TIMEOUT_S, shield=True):
                await asyncio.gather(*(h.aclose() for h in open_handles), return_exceptions=True)
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._watchdog is not None:
            await self._watchdog.aclose()
