"""`ExecutionService`: run code in a session and build its result.

The kernel call itself (timeout -> interrupt -> restart, death, exit, cancellation; code is never
sent twice) is `KernelSession.run_cell`. This service validates the arguments, feeds the cell's
outputs to an `OutputCollector` (and progress to the client), gathers the files and displays the
cell produced, and hands everything to the pure builders in `results.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError, KernelDiedError
from python_mcp_server.services.artifacts import (
    DRAIN_EXPRESSION,
    MAX_CHANGED_FILES,
    METADATA_KEY,
    Drained,
    parse_drain,
    parse_drained,
)
from python_mcp_server.services.displays import DisplayRenderer, RichOutputs
from python_mcp_server.services.models import ArtifactInfo, ExecutionResult
from python_mcp_server.services.outcome import CellOutcome
from python_mcp_server.services.outputs import (
    OutputCollector,
    ProgressCallback,
    ProgressPump,
    SpillSink,
)
from python_mcp_server.services.results import (
    CellOutputs,
    build_result,
    cell_record,
    kernel_notes,
    output_notes,
)
from python_mcp_server.services.session import KernelSession
from python_mcp_server.services.sessions import SessionManager
from python_mcp_server.text import require_text
from python_mcp_server.workspace.access import WorkspaceFiles

logger = logging.getLogger(__name__)

__all__ = ["ExecutionService", "OutputListener", "ProgressCallback"]

OutputListener = Callable[[str, str], None]
"""Takes each piece of a running cell's output: the stream's name and the text."""

MAX_TIMEOUT_S = 24 * 3600.0
DRAIN_TIMEOUT_S = 10.0
_DRAIN_KEY = "__pmcp_files__"


class ExecutionService:
    def __init__(
        self, config: ServerConfig, sessions: SessionManager, workspace: WorkspaceFiles
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._workspace = workspace  # where the files a cell wrote are looked up
        self.artifacts = sessions.outputs
        self._cleanups: set[asyncio.Task[None]] = set()  # stopped progress pumps, until they end

    async def run(
        self,
        session_id: str,
        code: str,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
        caller: str | None = None,
        on_output: OutputListener | None = None,
    ) -> ExecutionResult:
        """Run `code` in the session and return what it printed, returned, displayed or wrote.

        `on_progress`, when given, receives the cell's stdout/stderr while it runs (batched) and a
        keepalive message whenever the cell has been silent for `progress_keepalive_s`. `caller`
        (the client's identity, when it has one) is told if the kernel it used under this name
        was deleted or expired since. `on_output`, when given, gets each piece of stdout and
        stderr as it arrives, unbatched (`on_output("stdout", text)`); it must not block.
        """
        limit = self._limit(timeout_s)
        if not require_text(code, "code").strip():
            raise InvalidArgumentError("The code is empty; pass the Python source to run.")
        session = await self._sessions.acquire(session_id)
        async with session.turn():
            news = self._sessions.news(session_id, caller)
            if news is not None:
                session.notify(news)  # the cell reports it, with state_kept false
            return await self._run(session, code, limit, on_progress, on_output)

    async def run_once(
        self,
        code: str,
        dependencies: list[str] | None = None,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_output: OutputListener | None = None,
        on_setup: ProgressCallback | None = None,
    ) -> ExecutionResult:
        """Run `code` once in a fresh kernel (of an environment with `dependencies`, when
        given) that is discarded afterwards (see `OneShots`). `on_setup` gets progress messages
        of the environment build."""
        limit = self._limit(timeout_s)
        if not require_text(code, "code").strip():
            raise InvalidArgumentError("The code is empty; pass the Python source to run.")
        if dependencies is not None:
            self._sessions.check_own_environment(
                "A one-shot run's own environment (dependencies)",
                "Use a session instead: create_session, install_dependencies (it installs into "
                "the session's kernel there), then run_python_code.",
            )
        async with (
            self._sessions.oneshots.run(dependencies, on_setup) as session,
            session.turn(),
        ):
            return await self._run(session, code, limit, on_progress, on_output)

    async def _run(
        self,
        session: KernelSession,
        code: str,
        limit_s: float,
        on_progress: ProgressCallback | None,
        on_output: OutputListener | None = None,
    ) -> ExecutionResult:
        sid = session.session_id
        pump = (
            ProgressPump(on_progress, self._config.progress_keepalive_s)
            if on_progress is not None
            else None
        )
        collector = OutputCollector(
            self._config.max_output_chars,
            spill=lambda name: self._open_spill(sid, name),
            on_stream=_both(pump.push if pump is not None else None, on_output),
        )
        if pump is not None:
            pump.start()
        try:
            outcome = await session.run_cell(code, collector.feed, limit_s)
        finally:
            if pump is not None:
                self._forget(pump.cancel())
            collector.close()
        drained = await self._drained(session, outcome)
        rich, files = await self._artifacts(sid, collector, drained)
        outputs = CellOutputs(collector, rich, files, drained)
        session.record(cell_record(code, outcome, collector))
        seen = bool(collector.stdout.total or collector.stderr.total or collector.displays)
        notes = kernel_notes(outcome, limit_s, seen) + output_notes(
            outcome, outputs, self._config.max_output_chars
        )
        duration_ms = round((time.perf_counter() - outcome.submitted_at) * 1000, 2)
        return build_result(sid, outcome, outputs, notes, duration_ms)

    def _limit(self, timeout_s: float | None) -> float:
        limit = self._config.execution_timeout_s if timeout_s is None else timeout_s
        if not 0 < limit <= MAX_TIMEOUT_S:  # NaN fails this too
            raise InvalidArgumentError(
                f"timeout_s must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:.0f} "
                f"(a day); got {timeout_s}. Omit it for the server default."
            )
        return limit

    def _forget(self, task: asyncio.Task[None] | None) -> None:
        """Keep a reference to a background task until it ends."""
        if task is not None and not task.done():
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    def _open_spill(self, session_id: str, name: str) -> tuple[SpillSink, str]:
        filename = self.artifacts.new_name(name, ".txt")
        return self.artifacts.open_spill(session_id, filename), self.artifacts.uri(
            session_id, filename
        )

    async def _drained(self, session: KernelSession, outcome: CellOutcome) -> Drained | None:
        """The workspace files the cell wrote, as the kernel-side extension recorded them: from
        the reply's metadata, or (after an error or interrupt, whose reply carries none) with a
        silent request to the same kernel."""
        if outcome.reply is None or not outcome.tracks_files:
            return None
        drained = parse_drained(outcome.reply.metadata.get(METADATA_KEY))
        if drained is not None or session.generation != outcome.generation:
            return drained
        if not outcome.state_kept:
            return None
        try:
            reply = await session.evaluate({_DRAIN_KEY: DRAIN_EXPRESSION}, DRAIN_TIMEOUT_S)
        except (KernelDiedError, TimeoutError):
            return None
        return parse_drain(reply.content.get("user_expressions", {}).get(_DRAIN_KEY))

    async def _artifacts(
        self, session_id: str, collector: OutputCollector, drained: Drained | None
    ) -> tuple[RichOutputs, list[ArtifactInfo]]:
        """Images, plotly pages and long displays to files; details of changed files. Runs in a
        worker thread (Pillow, file writes); skipped entirely for a cell without either."""
        displays = collector.displays
        paths = drained.files if drained is not None else []
        if not displays and not paths:
            return RichOutputs(), []

        def render() -> RichOutputs:
            renderer = DisplayRenderer(
                self._config, self.artifacts, session_id, drained.plotlyjs if drained else None
            )
            return renderer.render(displays)

        rich = await anyio.to_thread.run_sync(render) if displays else RichOutputs()
        found = await self._workspace.regular_files(paths[:MAX_CHANGED_FILES]) if paths else []
        return rich, self.artifacts.describe(found)


def _both(first: OutputListener | None, second: OutputListener | None) -> OutputListener | None:
    """One listener that calls both (either may be None)."""
    if first is None or second is None:
        return first or second

    def both(name: str, text: str) -> None:
        first(name, text)
        second(name, text)

    return both
