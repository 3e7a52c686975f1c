"""`HealthService`: per-kernel process figures, host memory and disk, and a responsiveness check."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError, KernelBusyError, KernelDiedError
from python_mcp_server.health.monitor import MB, HealthMonitor
from python_mcp_server.services.environments import EnvironmentUsage
from python_mcp_server.services.models import KernelLimitsInfo, SandboxInfo
from python_mcp_server.services.session import KernelSession
from python_mcp_server.services.sessions import SessionManager

SLOW_MS = 500.0
MAX_PROBE_TIMEOUT_S = 120.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


class KernelHealth(BaseModel):
    session_id: str
    state: Literal["idle", "busy", "starting", "dead"]
    pid: int | None = None
    process_status: str | None = Field(
        default=None, description="The OS view: 'running', 'sleeping', 'stopped', 'zombie'..."
    )
    rss_mb: float | None = Field(default=None, description="Resident memory of the kernel.")
    cpu_percent: float | None = Field(
        default=None, description="CPU use of the kernel process, percent of one core."
    )
    threads: int | None = None
    open_files: int | None = Field(
        default=None, description="Open file descriptors (files, sockets, pipes)."
    )
    uptime_s: float | None = Field(default=None, description="Seconds since this kernel started.")
    child_processes: int | None = Field(
        default=None, description="Processes the kernel started that are still running."
    )
    execution_count: int
    restarts: int = Field(description="Times this session's kernel was replaced.")
    last_restart: str | None = Field(default=None, description="ISO 8601 time, UTC.")
    last_restart_reason: str | None = None
    limits: KernelLimitsInfo | None = Field(
        default=None, description="Enforced limits; None when kernels are not sandboxed."
    )


class HostHealth(BaseModel):
    cpu_count: int
    memory_total_mb: int
    memory_available_mb: int
    memory_floor_mb: int = Field(description="New sessions are refused below this.")
    disk_path: str = Field(description="The workspace folder.")
    disk_total_mb: int
    disk_free_mb: int


class PoolHealth(BaseModel):
    size: int = Field(description="Kernels kept started in advance (--kernel-pool-size).")
    ready: int
    starting: int


class HealthReport(BaseModel):
    kernels: list[KernelHealth]
    host: HostHealth
    pool: PoolHealth
    sandbox: SandboxInfo
    environments: EnvironmentUsage = Field(
        description="Sessions' own environments on disk (create_session with dependencies)."
    )


class Responsiveness(BaseModel):
    session_id: str
    verdict: Literal["responsive", "slow", "unresponsive", "dead"] = Field(
        description=f"'responsive': answered under {SLOW_MS:g} ms; 'slow': answered later; "
        "'unresponsive': no answer within the timeout; 'dead': the kernel process is gone."
    )
    round_trip_ms: float | None = Field(
        default=None, description="kernel_info round trip over the control channel."
    )
    timeout_s: float
    busy: bool = Field(description="True when a cell was running during the check.")
    pid: int | None = None
    message: str


class HealthService:
    def __init__(self, config: ServerConfig, sessions: SessionManager) -> None:
        self._config = config
        self._sessions = sessions

    @property
    def _monitor(self) -> HealthMonitor:
        return self._sessions.monitor

    async def report(self, session_id: str | None = None) -> HealthReport:
        """Health of one session's kernel, or of every session's when `session_id` is None."""
        if session_id is None:
            await self._sessions.refresh()
        chosen = (
            [await self._sessions.lookup(session_id)]
            if session_id is not None
            else self._sessions.sessions()
        )
        kernels = [await self._kernel(s) for s in chosen]
        return HealthReport(
            kernels=kernels,
            host=self.host(),
            pool=self.pool(),
            sandbox=self._sessions.sandbox.info(self._config),
            environments=await self._sessions.environments.usage(),
        )

    async def _kernel(self, session: KernelSession) -> KernelHealth:
        pid = session.pid
        last = session.restarts[-1] if session.restarts else None
        health = KernelHealth(
            session_id=session.session_id,
            state=session.public_state,
            pid=pid,
            execution_count=session.execution_count,
            restarts=len(session.restarts),
            last_restart=_iso(last.at) if last else None,
            last_restart_reason=last.reason if last else None,
            limits=session.info().limits,
        )
        if pid is None or session.exit_info() is not None:
            return health
        sample = await self._monitor.process(pid)
        if sample is None:
            return health
        return health.model_copy(
            update={
                "process_status": sample.status,
                "rss_mb": round(sample.rss_bytes / MB, 1),
                "cpu_percent": sample.cpu_percent,
                "threads": sample.threads,
                "open_files": sample.open_files,
                "uptime_s": round(max(0.0, time.time() - sample.create_time), 1),
                "child_processes": sample.children,
            }
        )

    def host(self) -> HostHealth:
        host = self._monitor.host()
        root = str(self._config.workspace_root)
        disk = self._monitor.disk(root)
        return HostHealth(
            cpu_count=host.cpu_count,
            memory_total_mb=host.memory_total_bytes // MB,
            memory_available_mb=host.memory_available_bytes // MB,
            memory_floor_mb=self._config.min_free_memory_mb,
            disk_path=root,
            disk_total_mb=disk.total_bytes // MB,
            disk_free_mb=disk.free_bytes // MB,
        )

    def pool(self) -> PoolHealth:
        pool = self._sessions.pool
        return PoolHealth(size=pool.size, ready=pool.ready, starting=pool.starting)

    async def responsiveness(self, session_id: str, timeout_s: float = 5.0) -> Responsiveness:
        """Time a kernel_info round trip on the control channel, which answers even while a
        cell runs, and judge it."""
        if not 0 < timeout_s <= MAX_PROBE_TIMEOUT_S:
            raise InvalidArgumentError(
                f"timeout_s must be above 0 and at most {MAX_PROBE_TIMEOUT_S:g}; got {timeout_s}."
            )
        session = self._sessions.get(session_id)
        busy = session.running

        def verdict(v: str, ms: float | None, message: str) -> Responsiveness:
            return Responsiveness(
                session_id=session_id,
                verdict=v,  # type: ignore[arg-type]
                round_trip_ms=ms,
                timeout_s=timeout_s,
                busy=busy,
                pid=session.pid,
                message=message,
            )

        started = time.perf_counter()
        try:
            await session.request("kernel_info_request", {}, timeout_s, control=True)
        except KernelBusyError:
            return verdict(
                "unresponsive",
                None,
                f"The kernel did not answer within {timeout_s:g} s. Call interrupt_kernel if a "
                "cell is stuck, or restart_kernel (variables are lost). An idle kernel that "
                "stays unresponsive is restarted automatically.",
            )
        except KernelDiedError as exc:
            return verdict(
                "dead",
                None,
                f"{exc} The server restarts a dead kernel automatically within a few seconds; "
                "the next call on this session says what happened.",
            )
        ms = round((time.perf_counter() - started) * 1000, 2)
        running = " while a cell was running" if busy else ""
        if ms >= SLOW_MS:
            return verdict(
                "slow",
                ms,
                f"The kernel answered in {ms:.0f} ms{running}; it is alive but slow to respond, "
                "probably holding the CPU in native code.",
            )
        return verdict(
            "responsive", ms, f"The kernel answered kernel_info in {ms:.1f} ms{running}."
        )
