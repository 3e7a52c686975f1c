"""`CellOutcome`: what happened to the kernel while one cell ran, as `KernelSession.run_cell`
reports it. Pure values; `results.py` turns them, with the cell's outputs, into the tool result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from python_mcp_server.kernels import ExecutionRun, Reply

CELL_KEY = "python_mcp_server_cell"  # the kernel-side extension's report in each execute reply
DeathCause = Literal["closed", "restarted", "shutdown", "replaced", "unreplaced"]
Status = Literal["ok", "error", "timeout"]


@dataclass(frozen=True)
class KernelDeath:
    """The kernel process ended while the cell ran.

    `cause`: the session was deleted or expired (`closed`), another call restarted it
    (`restarted`), the server stopped it at shutdown (`shutdown`), or it died and was replaced
    (`replaced`), or could not be replaced yet (`unreplaced`: `text` says why)."""

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


def cell_report(reply: Reply | None) -> dict[str, Any] | None:
    """The kernel-side report on the cell (`kernel_ext`): where an interrupt landed
    (`interrupt`: "landed", "outside" or None) and which broken streams it put back
    (`repaired`). None from a kernel without the extension."""
    report = reply.metadata.get(CELL_KEY) if reply is not None else None
    return report if isinstance(report, dict) else None


def interrupt_landed(reply: Reply, sent_at: float) -> bool:
    """Whether an interrupt sent at `sent_at` (epoch seconds) stopped the cell of `reply`, rather
    than arriving after the cell had finished. Without the kernel's report, a reply the kernel
    made before the interrupt was sent finished on its own."""
    report = cell_report(reply)
    if report is not None:
        return report.get("interrupt") == "landed"
    return reply.made_at is None or reply.made_at >= sent_at


def repaired_streams(reply: Reply | None) -> list[tuple[str, str]]:
    """The kernel's streams the cell broke and the kernel-side extension put back: the stream
    (stdout, stderr) and what the code had set it to."""
    report = cell_report(reply) or {}
    repaired = report.get("repaired")
    if not isinstance(repaired, list):
        return []
    return [(str(r.get("stream")), str(r.get("was"))) for r in repaired if isinstance(r, dict)]


def asked_to_exit(reply: Reply) -> bool:
    """ipykernel answers `exit()` / `quit()` with an `ask_exit` payload, then shuts down."""
    payload = reply.content.get("payload") or []
    return any(
        isinstance(p, dict) and p.get("source") == "ask_exit" and not p.get("keepkernel")
        for p in payload
    )


_REPLY_AFTER_IDLE_S = 1.0  # a reply sent before the idle status arrives within this


async def reply_after_interrupt(run: ExecutionRun, grace_s: float) -> Reply | None:
    """The interrupted cell's reply; None when the kernel finished with the request without one
    (the interrupt landed in the kernel's own code around the cell: it logs it and goes on)."""
    with anyio.fail_after(grace_s):
        await run.wait_idle()
    with anyio.move_on_after(_REPLY_AFTER_IDLE_S):  # the reply comes on another socket
        return await run.wait()
    return None
