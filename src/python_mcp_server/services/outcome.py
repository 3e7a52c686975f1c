"""`CellOutcome`: what happened to the kernel while one cell ran, as `KernelSession.run_cell`
reports it. Pure values; `results.py` turns them, with the cell's outputs, into the tool result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from python_mcp_server.kernels import Reply

DeathCause = Literal["closed", "restarted", "shutdown", "replaced"]
Status = Literal["ok", "error", "timeout"]


@dataclass(frozen=True)
class KernelDeath:
    """The kernel process ended while the cell ran.

    `cause`: the session was deleted or expired (`closed`), another call restarted it
    (`restarted`), the server stopped it at shutdown (`shutdown`), or it died and was replaced
    (`replaced`)."""

    text: str
    cause: DeathCause
    stderr_tail: str = ""


@dataclass(frozen=True)
class CellOutcome:
    """The kernel's side of one cell: the reply (None when the cell never finished), the notices
    about the kernel's life since the last call, and how the cell ended."""

    submitted_at: float  # time.perf_counter() when the code was sent
    generation: int  # the session's kernel generation the cell ran in
    reply: Reply | None = None
    notices: tuple[str, ...] = ()  # restarts since the last call, late output
    overran: Literal["interrupted", "restarted"] | None = None  # ran past its time limit
    exited: bool = False  # the code called exit() or quit(); the kernel was replaced
    death: KernelDeath | None = None
    state_kept: bool = True  # the variables of before the call are still there
    tracks_files: bool = False  # the kernel reports the workspace files the cell wrote
    execution_count: int | None = None
    server_stopping: bool = False

    def but(self, **changes: Any) -> CellOutcome:
        """A copy with `changes`; a death or a restart also means the state was lost."""
        outcome = dataclasses.replace(self, **changes)
        if outcome.death is not None or outcome.exited or outcome.overran == "restarted":
            outcome = dataclasses.replace(outcome, state_kept=False)
        return outcome

    @property
    def status(self) -> Status:
        """From the kernel's side alone; an error in the outputs also makes it `error`."""
        if self.overran is not None:
            return "timeout"
        if self.death is not None or (self.reply is not None and self.reply.status == "error"):
            return "error"
        return "ok"
