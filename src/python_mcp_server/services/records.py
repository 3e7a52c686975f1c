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
        head = "Kernel restarted" + (f" (new pid {pid});" if pid is not None else ";")
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
    generation: int = 0  # the session's kernel generation it ran in


@dataclass(frozen=True)
class KernelReplaced:
    """A mark in the history: the kernel was replaced; the cells after it ran in the new one."""

    at: float
    why: str  # short: "restart_kernel was called", "the code called exit()", ...
    generation: int  # the new kernel's
    carried: tuple[str, ...] = ()  # variables carried over (restart_kernel(preserve_state=true))

    def text(self) -> str:
        """The mark as the notebook shows it."""
        at = datetime.fromtimestamp(self.at, tz=UTC).strftime("%H:%M:%S UTC")
        kept = (
            f"; variables carried over: {', '.join(self.carried)}"
            if self.carried
            else "; variables from the cells above are gone"
        )
        return (
            f"— kernel restarted at {at} ({self.why}); the cells below ran in a new kernel{kept} —"
        )


HistoryEntry = CellRecord | KernelReplaced

MAX_HISTORY_BYTES = 64_000_000  # per session; the oldest cells go first
MAX_HISTORY_CELLS = 1000  # cells kept for export_notebook; older ones are counted, not kept


class CellHistory:
    """The executed cells kept for export_notebook, bounded by count and by bytes held, with a
    mark wherever the kernel was replaced."""

    def __init__(
        self, max_cells: int = MAX_HISTORY_CELLS, max_bytes: int = MAX_HISTORY_BYTES
    ) -> None:
        self._max_cells = max_cells
        self._max_bytes = max_bytes
        self._entries: list[HistoryEntry] = []
        self._cells = 0
        self._bytes = 0
        self.dropped = 0  # oldest cells no longer kept

    def append(self, cell: CellRecord) -> None:
        """Keep `cell`; drop the oldest cells while over a bound (the newest is always kept).

        A cell whose kernel was replaced while it ran (a timeout, exit(), a death) is recorded
        after the replacement: it goes before the marks of the kernels newer than its own."""
        at = len(self._entries)
        while at > 0 and _newer(self._entries[at - 1], cell.generation):
            at -= 1
        self._entries.insert(at, cell)
        self._cells += 1
        self._bytes += cell.size
        while self._cells > 1 and (
            len(self._entries) > self._max_cells or self._bytes > self._max_bytes
        ):
            self._drop_oldest()

    def mark(self, replaced: KernelReplaced) -> None:
        """Note that the kernel was replaced (nothing to mark before the first cell)."""
        if self._cells:
            self._entries.append(replaced)
            while len(self._entries) > self._max_cells and self._cells > 1:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = self._entries.pop(0)
        if isinstance(oldest, CellRecord):
            self._bytes -= oldest.size
            self._cells -= 1
            self.dropped += 1
        while self._entries and isinstance(self._entries[0], KernelReplaced):
            self._entries.pop(0)  # a mark with no cell above it marks nothing

    @property
    def cells(self) -> tuple[CellRecord, ...]:
        return tuple(e for e in self._entries if isinstance(e, CellRecord))

    @property
    def entries(self) -> tuple[HistoryEntry, ...]:
        """The cells and the kernel replacements between them, in order."""
        return tuple(self._entries)

    @property
    def bytes_held(self) -> int:
        return self._bytes


def _newer(entry: HistoryEntry, generation: int) -> bool:
    return isinstance(entry, KernelReplaced) and entry.generation > generation
