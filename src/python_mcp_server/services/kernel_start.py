"""Kernels the sessions can use: started by the backend, given the kernel-side extension, and kept
warm in the pool so a new session or a restart gets one at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from python_mcp_server.config import SECRET_ENV_VARS, ServerConfig
from python_mcp_server.errors import InvalidArgumentError, KernelDiedError, ResourceLimitError
from python_mcp_server.kernels import (
    KERNEL_MIN_PROCESSES,
    ExitInfo,
    KernelBackend,
    KernelHandle,
    KernelLimits,
    KernelSpec,
)
from python_mcp_server.services._kernel_ext import KERNEL_EXT_DIR
from python_mcp_server.services.artifacts import kernel_setup_code
from python_mcp_server.services.pool import KernelPool
from python_mcp_server.services.snapshot import StateTransfer
from python_mcp_server.workspace.shaping import SUBFOLDERS

logger = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 10.0


# Run once, visibly but without history, before a kernel is handed out: a kernel's first cell
# runs code paths nothing ran yet (the output streams, the display hook, the execute machinery)
# and takes about twice as long as the next, which a one-shot run (execute_python) would pay.
WARM_UP = "print(end='')\nNone"


@dataclass(frozen=True)
class ReadyKernel:
    """A started kernel and whether its kernel-side extension (changed-file tracking) loaded."""

    handle: KernelHandle
    tracks_files: bool

    def exit_info(self) -> ExitInfo | None:
        return self.handle.exit_info()

    async def aclose(self) -> None:
        await self.handle.aclose()

    async def release(self) -> None:
        await self.handle.release()


async def install_extension(
    handle: KernelHandle, layout: tuple[str, ...] = (), preview: tuple[int, int] = (0, 0)
) -> bool:
    """Load the kernel-side extension with a silent request (no history, no names, no
    execution_count), and make the workspace's `layout` folders when given; large images get
    their previews (`preview`: longest side, bytes) made in the kernel; then run `WARM_UP` (no
    history either). Returns whether changed-file tracking works in this kernel."""
    code = kernel_setup_code(layout=layout, preview=preview)
    try:
        with anyio.fail_after(SETUP_TIMEOUT_S):
            run = await handle.submit(code, silent=True, store_history=False)
            reply = await run.wait()
            warm = await handle.submit(WARM_UP, store_history=False)
            await warm.wait()
    except KernelDiedError:
        return False
    except TimeoutError:
        logger.warning("kernel setup did not finish within %s s", SETUP_TIMEOUT_S)
        return False
    if reply.status != "ok":
        logger.warning("kernel setup failed: %s", reply.content.get("evalue"))
    return reply.status == "ok"


class KernelStarter:
    """Starts ready kernels for `config` on `backend`, from the warm pool when it has one."""

    def __init__(
        self, config: ServerConfig, backend: KernelBackend, available_mb: Callable[[], int]
    ) -> None:
        self._config = config
        self._backend = backend
        self._available_mb = available_mb
        self.pool = KernelPool(config.kernel_pool_size, self.cold_start, self._memory_ok)
        self.sandboxed = False  # set by the session manager from the sandbox plan
        self.workspace_owner: tuple[int, int] | None = None  # the sandboxed kernels' uid

    @property
    def default_limits(self) -> KernelLimits:
        config = self._config
        return KernelLimits(
            memory_mb=config.kernel_memory_mb,
            max_processes=config.kernel_max_processes,
            cpus=config.kernel_cpus,
        )

    def limits_for(
        self, memory_mb: int | None, max_processes: int | None, cpus: float | None
    ) -> KernelLimits:
        """The server's limits, lowered where asked; raises if asked to raise one."""
        base = self.default_limits
        asked = {"memory_mb": memory_mb, "max_processes": max_processes, "cpus": cpus}
        values: dict[str, Any] = {}
        for name, value in asked.items():
            ceiling = getattr(base, name)
            if value is None:
                values[name] = ceiling
            elif value <= 0:
                raise InvalidArgumentError(f"{name} must be above 0; got {value}.")
            elif name == "max_processes" and value < KERNEL_MIN_PROCESSES:
                raise InvalidArgumentError(
                    f"max_processes={value} is too low: a kernel needs about "
                    f"{KERNEL_MIN_PROCESSES} processes and threads just to start (ipykernel's "
                    f"own); ask for at least {KERNEL_MIN_PROCESSES}, more if the code starts "
                    "processes or threads."
                )
            elif ceiling and value > ceiling:
                flag = "--kernel-" + name.replace("_mb", "-mb").replace("_", "-")
                raise InvalidArgumentError(
                    f"{name}={value:g} is above this server's limit of {ceiling:g} ({flag}); "
                    "a session may only lower it."
                )
            else:
                values[name] = value
        return KernelLimits(**values)

    def spec(
        self,
        limits: KernelLimits | None = None,
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> KernelSpec:
        """How a kernel starts: the server's interpreter, or `python` (a session's own
        environment, whose layers `read_only` names)."""
        config = self._config
        root = config.workspace_root
        return KernelSpec(
            python=python or config.kernel_python,
            cwd=root,
            env={
                "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "PYTHON_MCP_SERVER_WORKSPACE": str(root),
                "PYTHONUNBUFFERED": "1",
            },
            start_timeout_s=config.kernel_start_timeout_s,
            unset_env=SECRET_ENV_VARS,
            workspace=root,
            read_only=(KERNEL_EXT_DIR, *read_only),
            limits=limits or self.default_limits,
            main=KERNEL_EXT_DIR / "kernel_main.py",  # ipykernel's launcher, less its debugger
        )

    async def cold_start(
        self,
        limits: KernelLimits | None = None,
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> ReadyKernel:
        """A kernel started now, with the extension loaded before it is handed out."""
        handle = await self._backend.start(self.spec(limits, python, read_only))
        try:
            # the server makes the workspace's folders on its own disk; on a gateway, the kernel
            config = self._config
            tracks_files = await install_extension(
                handle,
                SUBFOLDERS if self._backend.remote else (),
                (config.image_max_side_px, config.image_max_bytes),
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await handle.aclose()
            raise
        return ReadyKernel(handle, tracks_files)

    async def take(
        self, limits: KernelLimits | None = None, *, defer_refill: bool = False
    ) -> ReadyKernel:
        """A ready kernel: from the warm pool when it has one (pool kernels have the server's
        limits), else started now. `defer_refill`: see `KernelPool.take`."""
        if limits is None or limits == self.default_limits:
            ready = await self.pool.take(defer_refill=defer_refill)
            if ready is not None:
                return ready
        return await self.cold_start(limits)

    async def replace(self, old: ReadyKernel, limits: KernelLimits | None = None) -> ReadyKernel:
        """A restart: the old kernel goes first (its memory may be what the new one needs)."""
        await old.aclose()
        return await self.take(limits)

    def for_environment(self, python: str, read_only: tuple[Path, ...]) -> EnvironmentKernels:
        """Kernels of a session's own environment (never from the warm pool, which serves the
        server's environment)."""
        return EnvironmentKernels(self, python, read_only)

    def state_transfer(self) -> StateTransfer:
        """Sandboxed kernels share no folder but the workspace: restarts carry state through it.
        Kernels on a gateway share none with this server: through the server itself."""
        if self._backend.remote:
            return StateTransfer(through_server=True)
        if self.workspace_owner is None and not self.sandboxed:
            return StateTransfer()
        return StateTransfer.within(self._config.workspace_root, self.workspace_owner)

    def _memory_ok(self) -> bool:
        floor = self._config.min_free_memory_mb
        return floor <= 0 or self._available_mb() >= floor

    def check_memory(self) -> None:
        """Refuse a new session while host available memory is below the configured floor."""
        floor = self._config.min_free_memory_mb
        if floor <= 0:
            return
        available = self._available_mb()
        if available < floor:
            raise ResourceLimitError(
                f"No new session was started: the host has {available} MB of memory available, "
                f"below this server's floor of {floor} MB (--min-free-memory-mb). Delete "
                "sessions you no longer need with delete_session, or free memory, then try again."
            )


class EnvironmentKernels:
    """Starts the kernels of one session's own environment (`KernelStarter.for_environment`)."""

    def __init__(self, starter: KernelStarter, python: str, read_only: tuple[Path, ...]) -> None:
        self._starter = starter
        self._python = python
        self._read_only = read_only

    async def take(self, limits: KernelLimits | None = None) -> ReadyKernel:
        return await self._starter.cold_start(limits, self._python, self._read_only)

    async def replace(self, old: ReadyKernel, limits: KernelLimits | None = None) -> ReadyKernel:
        await old.aclose()
        return await self.take(limits)

    def state_transfer(self) -> StateTransfer:
        return self._starter.state_transfer()
