"""What a session remembers: its restarts, the outcome of a restart, and its executed cells."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from python_mcp_server.services.models import DroppedVariable, RestartResult
from python_mcp_server.services.snapshot import DroppedName


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def now_iso() -> str:
    return iso(time.time())


@dataclass(frozen=True)
class RestartEvent:
    """A kernel replacement: when, and why (the notice given to the model, if any)."""

    at: float
    reason: str


@dataclass(frozen=True)
class RestartOutcome:
    """What `KernelSession.restart` did about the variables."""

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


MAX_HISTORY_BYTES = 64_000_000  # per session; the oldest cells go first
MAX_HISTORY_CELLS = 1000  # cells kept for export_notebook; older ones are counted, not kept


class CellHistory:
    """The executed cells kept for export_notebook, bounded by count and by bytes held."""

    def __init__(
        self, max_cells: int = MAX_HISTORY_CELLS, max_bytes: int = MAX_HISTORY_BYTES
    ) -> None:
        self._max_cells = max_cells
        self._max_bytes = max_bytes
        self._cells: list[CellRecord] = []
        self._bytes = 0
        self.dropped = 0  # oldest cells no longer kept

    def append(self, cell: CellRecord) -> None:
        """Keep `cell`; drop the oldest cells while over a bound (the newest is always kept)."""
        self._cells.append(cell)
        self._bytes += cell.size
        while len(self._cells) > 1 and (
            len(self._cells) > self._max_cells or self._bytes > self._max_bytes
        ):
            oldest = self._cells.pop(0)
            self._bytes -= oldest.size
            self.dropped += 1

    @property
    def cells(self) -> tuple[CellRecord, ...]:
        return tuple(self._cells)

    @property
    def bytes_held(self) -> int:
        return self._bytes
