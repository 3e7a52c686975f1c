"""`Session`: one named kernel and what the server remembers about it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from python_mcp_server.kernels import KernelHandle
from python_mcp_server.services.models import DroppedVariable, RestartResult, SessionInfo
from python_mcp_server.services.snapshot import DroppedName


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return _iso(time.time())


@dataclass(frozen=True)
class RestartEvent:
    """A kernel replacement: when, and why (the notice given to the model, if any)."""

    at: float
    reason: str


@dataclass(frozen=True)
class RestartOutcome:
    """What `SessionManager.restart` did about the variables."""

    preserved: bool = False
    restored: list[str] = field(default_factory=list)
    dropped: list[DroppedName] = field(default_factory=list)
    problem: str | None = None
    asked: bool = False

    def result(self, session_id: str, pid: int | None) -> RestartResult:
        """The restart_kernel result: what survived, what did not and why."""
        head = f"Kernel restarted (new pid {pid});"
        if not self.asked:
            message = f"{head} all variables were cleared."
        else:
            restored = ", ".join(self.restored) or "none"
            message = f"{head} restored {len(self.restored)} variable(s): {restored}."
            if self.dropped:
                message += (
                    " Not carried over: "
                    + "; ".join(f"{d.name} ({d.reason})" for d in self.dropped)
                    + "."
                )
            if self.problem:
                message += f" Note: {self.problem}."
        return RestartResult(
            session_id=session_id,
            message=message,
            kernel_pid=pid,
            state_preserved=self.preserved,
            restored=self.restored,
            dropped=[DroppedVariable(name=d.name, reason=d.reason) for d in self.dropped],
        )


@dataclass(frozen=True)
class CellRecord:
    """One executed cell, kept for export_notebook. `outputs` are nbformat v4 output dicts."""

    code: str
    execution_count: int | None
    outputs: list[dict[str, Any]]
    status: str
    size: int = 0  # rough bytes held, for the history budget


@dataclass
class Session:
    """One named kernel. Calls that run code hold `lock` (FIFO) for their whole duration."""

    session_id: str
    description: str | None
    handle: KernelHandle
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    execution_count: int = 0
    generation: int = 0
    running: bool = False
    restarting: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    restart_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    notices: list[str] = field(default_factory=list)
    history: list[CellRecord] = field(default_factory=list)
    history_dropped: int = 0
    history_bytes: int = 0
    closed: bool = False  # deleted or expired: never restart it again
    probe_failures: int = 0
    restarts: list[RestartEvent] = field(default_factory=list)

    def touch(self) -> None:
        self.last_used = time.time()

    def take_notices(self) -> list[str]:
        notes, self.notices = self.notices, []
        return notes

    def info(self) -> SessionInfo:
        return SessionInfo(
            session_id=self.session_id,
            description=self.description,
            created=_iso(self.created),
            last_used=_iso(self.last_used),
            execution_count=self.execution_count,
            state=self.state,
            kernel_pid=self.handle.pid,
            python=self.handle.python,
        )

    @property
    def state(self) -> Literal["idle", "busy", "starting", "dead"]:
        if self.restarting:
            return "starting"
        if self.handle.exit_info() is not None:
            return "dead"
        return "busy" if self.running else "idle"
