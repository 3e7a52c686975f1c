"""`ExecutionService`: run code in a session; timeout -> interrupt -> restart; never re-send code."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from typing import Any, TextIO

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    InvalidArgumentError,
    KernelDiedError,
    KernelNotFoundError,
)
from python_mcp_server.kernels import ExecutionRun, KernelHandle, Reply
from python_mcp_server.services.artifacts import (
    DRAIN_EXPRESSION,
    METADATA_KEY,
    ArtifactStore,
    Drained,
    kernel_setup_code,
    parse_drain,
    parse_drained,
)
from python_mcp_server.services.displays import DisplayRenderer, RichOutputs
from python_mcp_server.services.models import ArtifactInfo, ErrorInfo, ExecutionResult
from python_mcp_server.services.outputs import (
    MAX_DISPLAYS_PER_CELL,
    OutputCollector,
    ProgressCallback,
    ProgressPump,
)
from python_mcp_server.services.session import CellRecord, Session, now_iso
from python_mcp_server.services.sessions import SessionManager
from python_mcp_server.text import require_text

logger = logging.getLogger(__name__)

_FIGURE_REPR = re.compile(r"^<Figure size \d+x\d+ with \d+ Axes>$")
KERNEL_DIED = "KernelDied"  # `error.ename` when the kernel process ended mid-cell

__all__ = ["ExecutionService", "ProgressCallback"]

_EXIT_GRACE_S = 5.0
MAX_HISTORY_BYTES = 64_000_000  # per session; the oldest cells go first
MAX_HISTORY_CELLS = 1000  # cells kept for export_notebook; older ones are counted, not kept
MAX_TIMEOUT_S = 24 * 3600.0
SETUP_TIMEOUT_S = 10.0
_DRAIN_KEY = "__pmcp_files__"


class ExecutionService:
    def __init__(self, config: ServerConfig, sessions: SessionManager) -> None:
        self._config = config
        self._sessions = sessions
        self._cleanups: set[asyncio.Task[None]] = set()
        self._settling: set[int] = set()  # sessions whose lock a settle task now owns
        self.artifacts = ArtifactStore(config)
        # kernel handle -> whether its file-tracking hook is installed
        self._prepared: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        # pool kernels get the hooks while they wait, so a first cell does not pay for them
        sessions.on_kernel_start.append(self._prepare)

    async def run(
        self,
        session_id: str,
        code: str,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ExecutionResult:
        """Run `code` in the session and return what it printed, returned, displayed or wrote.

        `on_progress`, when given, receives the cell's stdout/stderr while it runs (batched) and a
        keepalive message whenever the cell has been silent for `progress_keepalive_s`.
        """
        timeout = self._config.execution_timeout_s if timeout_s is None else timeout_s
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise InvalidArgumentError(
                f"timeout_s must be above 0 and at most {MAX_TIMEOUT_S:.0f}; got {timeout_s}."
            )
        if not require_text(code, "code").strip():
            raise InvalidArgumentError("The code is empty; pass the Python source to run.")
        session = await self._sessions.acquire(session_id)
        await session.lock.acquire()
        try:
            if session.closed:  # deleted or expired while this call waited for its turn
                self._sessions.get(session_id)
                raise KernelNotFoundError(session_id, self._sessions.ids())
            return await self._run_locked(session, code, timeout, on_progress)
        finally:
            # a cancel while the cell ran hands the lock to the settle task; any other exit,
            # a cancel during the after-cell steps included, releases it here
            if id(session) in self._settling:
                self._settling.discard(id(session))
            else:
                session.lock.release()

    async def _run_locked(
        self, session: Session, code: str, limit_s: float, on_progress: ProgressCallback | None
    ) -> ExecutionResult:
        notices = session.take_notices()
        sid = session.session_id
        pump = (
            ProgressPump(on_progress, self._config.progress_keepalive_s)
            if on_progress is not None
            else None
        )
        collector = OutputCollector(
            self._config.max_output_chars,
            spill=lambda name: self._open_spill(sid, name),
            on_stream=pump.push if pump is not None else None,
        )
        session.touch()
        session.running = True
        generation = session.generation
        handle = session.handle
        status = "ok"
        messages: list[str] = list(notices)
        state_kept = not notices  # every notice reports a restart that lost the variables
        reply: Reply | None = None
        died: str | None = None  # the kernel process ended while the cell ran
        started = time.perf_counter()
        try:
            dead = handle.exit_info()
            if dead is not None:  # it ended after the last call, before the supervisor noticed
                await self._sessions.restart(
                    session,
                    f"At {now_iso()} the kernel {dead.describe()} after a call; it was restarted "
                    "before the next one ran.",
                    told=True,
                )
                handle, generation, state_kept = session.handle, session.generation, False
                messages.append(
                    f"The kernel {dead.describe()} after the previous call; it was restarted "
                    "before running this code, and all variables were lost."
                )
            late = handle.take_late_output()
            if late:
                messages.append(
                    "Output printed after an earlier call had returned (by a thread or a "
                    f"background process), kept so it is not lost:\n{late}"
                )
            await self._prepare(handle)
            started = time.perf_counter()
            if pump is not None:
                pump.start()
            run = await handle.submit(
                code,
                collector.feed,
            )
            try:
                reply = await self._wait(run, limit_s, session)
                if _asked_to_exit(reply):
                    await self._finish_exit(session, handle)
                    state_kept = False
                    messages.append(
                        "The code asked the kernel to exit (exit() or quit()), so it was "
                        "restarted: all variables were lost. Use restart_kernel to do this "
                        "on purpose."
                    )
            except TimeoutError:
                status = "timeout"
                reply, note, state_kept = await self._stop(session, run)
                messages.append(f"The code ran longer than {limit_s:g} s; {note}.")
            except KernelDiedError as exc:
                status = "error"
                state_kept = False
                died = str(exc)
                if session.closed:
                    messages.append(
                        "The session was deleted (delete_session) while this code ran; its "
                        "kernel and variables are gone."
                    )
                elif session.generation != generation:
                    messages.append(
                        "The kernel was restarted (restart_kernel) while this code ran; its "
                        "variables were lost."
                    )
                elif self._sessions.stopping:
                    messages.append(
                        "The server is shutting down and this cell did not stop when "
                        "interrupted, so its kernel was stopped; call again once the server is "
                        "back (variables are not kept across a server restart)."
                    )
                else:
                    await self._sessions.restart(session, f"At {now_iso()}: {died}", told=True)
                    info = handle.exit_info()
                    tail = (
                        f" Its last output: {info.stderr_tail[-400:]}"
                        if info and info.stderr_tail
                        else ""
                    )
                    kept = (
                        " Output produced before the death is included."
                        if collector.stdout.total or collector.stderr.total or collector.displays
                        else ""
                    )
                    messages.append(f"{exc} It was restarted; all variables were lost.{kept}{tail}")
        except asyncio.CancelledError:
            self._settle_after_cancel(session, handle, generation)
            raise
        finally:
            if pump is not None:
                self._forget(pump.cancel())
            collector.close()
            if id(session) not in self._settling:  # a settle task keeps it busy until it is free
                session.running = False
            session.touch()
        drained: Drained | None = None
        if reply is not None and self._prepared.get(handle):
            drained = parse_drained(reply.metadata.get(METADATA_KEY))
            if drained is None and session.generation == generation and state_kept:
                drained = await self._drain(handle)
        rich, files = await self._artifacts(sid, collector, drained)
        if drained is not None and drained.more:
            messages.append(
                f"The code wrote {drained.more} more workspace file(s) than the {len(files)} "
                "listed in files; call list_files to see them all."
            )
        if reply is not None:
            count = reply.content.get("execution_count")
            if isinstance(count, int):
                session.execution_count = count
            if reply.status == "error" and status == "ok":
                status = "error"
        error = collector.error
        if error is not None and status == "ok":
            status = "error"
        session.history.append(
            CellRecord(
                code=code,
                execution_count=session.execution_count if reply is not None else None,
                outputs=collector.notebook,
                status=status,
                size=collector.nb_bytes + len(code),
            )
        )
        session.history_bytes += collector.nb_bytes + len(code)
        while len(session.history) > 1 and (
            len(session.history) > MAX_HISTORY_CELLS or session.history_bytes > MAX_HISTORY_BYTES
        ):
            oldest = session.history.pop(0)
            session.history_bytes -= oldest.size
            session.history_dropped += 1
        for name, text in (
            ("stdout", collector.stdout),
            ("stderr", collector.stderr),
            ("The result", collector.result),
        ):
            if text is not None and text.truncated:
                where = f"; the full text is in {text.uri}" if text.uri else ""
                messages.append(
                    f"{name} was {text.total} characters, over the budget of "
                    f"{self._config.max_output_chars}; the middle was left out{where}."
                )
        messages.extend(rich.notes)
        result_text = collector.result.render() if collector.result is not None else None
        if not rich.images and result_text and _FIGURE_REPR.match(result_text):
            messages.append(
                "The result is a matplotlib figure but no image was captured: the inline backend "
                "was switched off (matplotlib.use('Agg') does that). Run `%matplotlib inline` to "
                "get images back, or save it with plt.savefig('plot.png')."
            )
        if self._sessions.stopping and error is not None and error.ename == "KeyboardInterrupt":
            messages.append(
                "The server is shutting down, so this cell was interrupted; call again once it "
                "is back (variables are not kept across a server restart)."
            )
        if collector.dropped_displays:
            messages.append(
                f"The code displayed {collector.dropped_displays} more output(s) beyond the first "
                f"{MAX_DISPLAYS_PER_CELL}; they were left out of this result. Display fewer "
                "objects, or save them to files."
            )
        return ExecutionResult(
            session_id=session.session_id,
            status=status,  # type: ignore[arg-type]
            execution_count=session.execution_count if reply is not None else None,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            stdout=collector.stdout.render(),
            stderr=collector.stderr.render(),
            result=collector.result.render() if collector.result is not None else None,
            error=ErrorInfo(ename=error.ename, evalue=error.evalue, traceback=error.traceback)
            if error is not None
            else ErrorInfo(ename=KERNEL_DIED, evalue=died)
            if died is not None
            else None,
            message=" ".join(messages) or None,
            state_kept=state_kept,
            images=rich.images,
            displays=rich.displays,
            files=files,
            output_files=collector.spill_uris(),
        )

    def _open_spill(self, session_id: str, name: str) -> tuple[TextIO, str]:
        filename = self.artifacts.new_name(name, ".txt")
        return self.artifacts.open_text(session_id, filename), self.artifacts.uri(
            session_id, filename
        )

    async def _prepare(self, handle: KernelHandle) -> bool:
        """Install the kernel-side hooks once per kernel (silent: no history, no names, no
        execution_count). Returns whether changed-file tracking works in this kernel."""
        known = self._prepared.get(handle)
        if known is not None:
            return known
        ok = False
        try:
            with anyio.fail_after(SETUP_TIMEOUT_S):
                run = await handle.submit(kernel_setup_code(), silent=True, store_history=False)
                reply = await run.wait()
            ok = reply.status == "ok"
            if not ok:
                logger.warning("kernel setup failed: %s", reply.content.get("evalue"))
        except KernelDiedError:
            return False
        except TimeoutError:
            logger.warning("kernel setup did not finish within %s s", SETUP_TIMEOUT_S)
        self._prepared[handle] = ok
        return ok

    async def _drain(self, handle: KernelHandle) -> Drained | None:
        """Collect the changed-file list with a silent request (after an error or interrupt the
        cell's own reply carries no user expressions)."""
        try:
            with anyio.fail_after(SETUP_TIMEOUT_S):
                run = await handle.submit(
                    "",
                    silent=True,
                    store_history=False,
                    user_expressions={_DRAIN_KEY: DRAIN_EXPRESSION},
                )
                reply = await run.wait()
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

        def work() -> tuple[RichOutputs, list[ArtifactInfo]]:
            renderer = DisplayRenderer(
                self._config, self.artifacts, session_id, drained.plotlyjs if drained else None
            )
            return renderer.render(displays), self.artifacts.describe_changed(paths)

        return await anyio.to_thread.run_sync(work)

    def _forget(self, task: asyncio.Task[None] | None) -> None:
        """Keep a reference to a background task until it ends."""
        if task is not None and not task.done():
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    async def _finish_exit(self, session: Session, handle: KernelHandle) -> None:
        """Let a kernel that was asked to exit end (bounded), then replace it."""
        with anyio.move_on_after(_EXIT_GRACE_S):
            await handle.wait_exit()
        await self._sessions.restart(
            session, f"At {now_iso()} a cell called exit() or quit().", told=True
        )

    async def _wait(self, run: ExecutionRun, limit_s: float, session: Session) -> Reply:
        # a cancel scope, not wait_for: no extra task per cell on the hot path
        with anyio.fail_after(limit_s):
            return await run.wait()

    async def _stop(self, session: Session, run: ExecutionRun) -> tuple[Reply | None, str, bool]:
        """Interrupt a cell that ran too long; restart the kernel if the interrupt does not land."""
        try:
            await session.handle.interrupt()
            reply = await asyncio.wait_for(run.wait(), self._config.interrupt_grace_s)
        except (TimeoutError, KernelDiedError):
            await self._sessions.restart(
                session,
                f"At {now_iso()} a cell ran past its time limit and did not stop when interrupted.",
                told=True,
            )
            return (
                None,
                (
                    "it did not stop when interrupted, so the kernel was restarted: restarted, "
                    "state lost (all variables are gone)"
                ),
                False,
            )
        return reply, "interrupted, state kept", True

    def _settle_after_cancel(self, session: Session, handle: object, generation: int) -> None:
        """The client cancelled: interrupt the kernel, then free the session. Runs in the background
        because the cancelled call cannot wait; the session lock is released when it ends."""

        async def settle() -> None:
            try:
                if session.generation == generation and session.handle.exit_info() is None:
                    await session.handle.interrupt()
                    try:
                        await asyncio.wait_for(self._idle(session), self._config.interrupt_grace_s)
                    except (TimeoutError, KernelDiedError):
                        await self._sessions.restart(
                            session,
                            "A cancelled cell could not be interrupted; the kernel was restarted "
                            "and variables were lost.",
                        )
            except Exception:  # background boundary: log, never lose the lock
                logger.exception("cleanup after a cancelled call failed")
            finally:
                session.running = False
                session.lock.release()

        self._settling.add(id(session))
        self._forget(asyncio.get_running_loop().create_task(settle()))

    async def _idle(self, session: Session) -> None:
        run = await session.handle.submit("", silent=True, store_history=False)
        await run.wait()


def _asked_to_exit(reply: Reply) -> bool:
    """ipykernel answers `exit()` / `quit()` with an `ask_exit` payload, then shuts down."""
    payload = reply.content.get("payload") or []
    return any(
        isinstance(p, dict) and p.get("source") == "ask_exit" and not p.get("keepkernel")
        for p in payload
    )
