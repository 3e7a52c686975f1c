"""Pure functions that turn one cell's kernel outcome and outputs into the tool result.

No kernel, no I/O: `ExecutionService` gathers the pieces (the `CellOutcome` from the session, the
`OutputCollector` fed while the cell ran, the rendered displays and the changed files) and these
functions say what the model reads: the status, the error, and every note, in a fixed order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from python_mcp_server.services.artifacts import Drained
from python_mcp_server.services.displays import RichOutputs
from python_mcp_server.services.models import ArtifactInfo, ErrorInfo, ExecutionResult
from python_mcp_server.services.outcome import (
    CellOutcome,
    KernelDeath,
    Status,
    repaired_streams,
)
from python_mcp_server.services.outputs import MAX_DISPLAYS_PER_CELL, OutputCollector
from python_mcp_server.services.records import CellRecord

KERNEL_DIED = "KernelDied"  # `error.ename` when the kernel process ended mid-cell
_FIGURE_REPR = re.compile(r"^<Figure size \d+x\d+ with \d+ Axes>$")


@dataclass(frozen=True)
class CellOutputs:
    """What the cell produced, beyond the kernel's own outcome."""

    collector: OutputCollector
    rich: RichOutputs = field(default_factory=RichOutputs)
    files: list[ArtifactInfo] = field(default_factory=list)
    drained: Drained | None = None


def kernel_notes(outcome: CellOutcome, limit_s: float, output_seen: bool) -> list[str]:
    """What happened to the kernel: since the last call, then how this cell ended."""
    notes = list(outcome.notices)
    if outcome.exited:
        notes.append(
            "The code asked the kernel to exit (exit() or quit()), so it was restarted: all "
            "variables were lost. Use restart_kernel to do this on purpose."
        )
    if outcome.overran == "interrupted":
        notes.append(f"The code ran longer than {limit_s:g} s; interrupted, state kept.")
    elif outcome.overran == "restarted":
        notes.append(
            f"The code ran longer than {limit_s:g} s; it did not stop when interrupted, so the "
            "kernel was restarted: restarted, state lost (all variables are gone)."
        )
    if outcome.death is not None:
        notes.append(death_note(outcome.death, output_seen))
    for stream, was in repaired_streams(outcome.reply):
        notes.append(
            f"The code set sys.{stream} to {was}; the kernel sends your output through it, so "
            f"it was put back and later output reaches you again. To silence {stream}, run the "
            f"code inside `with contextlib.redirect_{stream}(io.StringIO()):`."
        )
    return notes


def death_note(death: KernelDeath, output_seen: bool) -> str:
    if death.cause == "closed":
        return (
            "The session was deleted (delete_session) while this code ran; its kernel and "
            "variables are gone."
        )
    if death.cause == "restarted":
        return (
            "The kernel was restarted (restart_kernel) while this code ran; its variables were "
            "lost."
        )
    if death.cause == "shutdown":
        return (
            "The server is shutting down and this cell did not stop when interrupted, so its "
            "kernel was stopped; call again once the server is back (variables are not kept "
            "across a server restart)."
        )
    kept = " Output produced before the death is included." if output_seen else ""
    if death.cause == "unreplaced":
        return f"{death.text} All variables were lost.{kept}"
    tail = f" Its last output: {death.stderr_tail[-400:]}" if death.stderr_tail else ""
    return f"{death.text} It was restarted; all variables were lost.{kept}{tail}"


def output_notes(outcome: CellOutcome, outputs: CellOutputs, max_chars: int) -> list[str]:
    """What the result leaves out or cannot show, and where to find it."""
    collector, drained = outputs.collector, outputs.drained
    notes: list[str] = []
    if drained is not None and drained.more:
        notes.append(
            f"The code wrote {drained.more} more workspace file(s) than the "
            f"{len(outputs.files)} listed in files; call list_files to see them all."
        )
    for name, text in (
        ("stdout", collector.stdout),
        ("stderr", collector.stderr),
        ("The result", collector.result),
    ):
        if text is not None and text.truncated:
            where = f"; the full text is in {text.uri}" if text.uri else ""
            lost = f" Its full text was not kept. {text.not_kept}" if text.not_kept else ""
            notes.append(
                f"{name} was {text.total} characters, over the budget of {max_chars}; the "
                f"middle was left out{where}.{lost}"
            )
    notes.extend(outputs.rich.notes)
    result_text = collector.result.render() if collector.result is not None else None
    if not outputs.rich.images and result_text and _FIGURE_REPR.match(result_text):
        notes.append(
            "The result is a matplotlib figure but no image was captured: the inline backend was "
            "switched off (matplotlib.use('Agg') does that). Run `%matplotlib inline` to get "
            "images back, or save it with plt.savefig('plot.png')."
        )
    error = collector.error
    if outcome.server_stopping and error is not None and error.ename == "KeyboardInterrupt":
        notes.append(
            "The server is shutting down, so this cell was interrupted; call again once it is "
            "back (variables are not kept across a server restart)."
        )
    if collector.dropped_displays:
        notes.append(
            f"The code displayed {collector.dropped_displays} more output(s) beyond the first "
            f"{MAX_DISPLAYS_PER_CELL}; they were left out of this result. Display fewer objects, "
            "or save them to files."
        )
    return notes


def cell_status(outcome: CellOutcome, collector: OutputCollector) -> Status:
    status = outcome.status
    if status == "ok" and collector.error is not None:
        return "error"
    return status


def cell_record(code: str, outcome: CellOutcome, collector: OutputCollector) -> CellRecord:
    """The cell as export_notebook keeps it."""
    return CellRecord(
        code=code,
        execution_count=outcome.execution_count,
        outputs=collector.notebook,
        status=cell_status(outcome, collector),
        size=collector.nb_bytes + len(code),
        generation=outcome.generation,
    )


def build_result(
    session_id: str,
    outcome: CellOutcome,
    outputs: CellOutputs,
    notes: list[str],
    duration_ms: float,
) -> ExecutionResult:
    collector = outputs.collector
    error = collector.error
    info: ErrorInfo | None = None
    if error is not None:
        info = ErrorInfo(ename=error.ename, evalue=error.evalue, traceback=error.traceback)
    elif outcome.death is not None:
        info = ErrorInfo(ename=KERNEL_DIED, evalue=outcome.death.text)
    return ExecutionResult(
        session_id=session_id,
        status=cell_status(outcome, collector),
        execution_count=outcome.execution_count,
        duration_ms=duration_ms,
        stdout=collector.stdout.render(),
        stderr=collector.stderr.render(),
        result=collector.result.render() if collector.result is not None else None,
        error=info,
        message=" ".join(notes) or None,
        state_kept=outcome.state_kept,
        images=outputs.rich.images,
        displays=outputs.rich.displays,
        files=outputs.files,
        output_files=collector.spill_uris(),
    ).with_notes(notes)
