"""`ExecutionService`: run code in a session; timeout -> interrupt -> restart; never re-send code."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError, KernelDiedError
from python_mcp_server.kernels import ExecutionRun, Reply
from python_mcp_server.services.models import ErrorInfo, ExecutionResult
from python_mcp_server.services.outputs import OutputCollector
from python_mcp_server.services.sessions import CellRecord, Session, SessionManager

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str], Awaitable[None]]
MAX_TIMEOUT_S = 24 * 3600.0


class ExecutionService:
    def __init__(self, config: ServerConfig, sessions: SessionManager) -> None:
        self._config = config
        self._sessions = sessions
        self._cleanups: set[asyncio.Task[None]] = set()

    async def run(
        self,
        session_id: str,
        code: str,
        timeout_s: float | None = None,
    ) -> ExecutionResult:
        """Run `code` in the session and return what it printed, returned or raised."""
        timeout = self._config.execution_timeout_s if timeout_s is None else timeout_s
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise InvalidArgumentError(
                f"timeout_s must be above 0 and at most {MAX_TIMEOUT_S:.0f}; got {timeout_s}."
            )
        session = await self._sessions.acquire(session_id)
        await session.lock.acquire()
        handed_over = False
        try:
            return await self._run_locked(session, code, timeout)
        except asyncio.CancelledError:
            handed_over = True
            raise
        finally:
            if not handed_over:
                session.lock.release()

    async def _run_locked(self, session: Session, code: str, timeout: float) -> ExecutionResult:
        notices = session.take_notices()
        collector = OutputCollector(self._config.max_output_chars)
        started = time.perf_counter()
        session.touch()
        session.running = True
        generation = session.generation
        handle = session.handle
        status = "ok"
        messages: list[str] = list(notices)
        state_kept = True
        reply: Reply | None = None
        try:
            run = await handle.submit(code, collector.feed)
            try:
                reply = await self._wait(run, timeout, session)
            except TimeoutError:
                status = "timeout"
                reply, note, state_kept = await self._stop(session, run)
                messages.append(f"The code ran longer than {timeout:g} s and was {note}.")
            except KernelDiedError as exc:
                status = "error"
                state_kept = False
                if session.generation != generation:
                    messages.append(
                        "The kernel was restarted (restart_kernel or delete_session) while this "
                        "code ran; its variables were lost."
                    )
                else:
                    await self._sessions.restart(session)
                    info = handle.exit_info()
                    tail = (
                        f" Its last output: {info.stderr_tail[-400:]}"
                        if info and info.stderr_tail
                        else ""
                    )
                    messages.append(
                        f"{exc} It was restarted; all variables were lost. Output produced before "
                        f"the death is included.{tail}"
                    )
        except asyncio.CancelledError:
            self._settle_after_cancel(session, handle, generation)
            raise
        finally:
            session.running = False
            session.touch()
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
            )
        )
        for name, text in (("stdout", collector.stdout), ("stderr", collector.stderr)):
            if text.truncated:
                messages.append(f"{name} was {text.total} characters; the middle was left out.")
        return ExecutionResult(
            session_id=session.session_id,
            status=status,  # type: ignore[arg-type]
            execution_count=session.execution_count if reply is not None else None,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            stdout=collector.stdout.render(),
            stderr=collector.stderr.render(),
            result=collector.result,
            error=ErrorInfo(ename=error.ename, evalue=error.evalue, traceback=error.traceback)
            if error is not None
            else None,
            message=" ".join(messages) or None,
            state_kept=state_kept,
        )

    async def _wait(self, run: ExecutionRun, timeout: float, session: Session) -> Reply:
        return await asyncio.wait_for(run.wait(), timeout)

    async def _stop(self, session: Session, run: ExecutionRun) -> tuple[Reply | None, str, bool]:
        """Interrupt a cell that ran too long; restart the kernel if the interrupt does not land."""
        try:
            await session.handle.interrupt()
            reply = await asyncio.wait_for(run.wait(), self._config.interrupt_grace_s)
        except (TimeoutError, KernelDiedError):
            await self._sessions.restart(session)
            return None, "could not be interrupted, so the kernel was restarted (state lost)", False
        return reply, "interrupted (state kept)", True

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

        task = asyncio.get_running_loop().create_task(settle())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _idle(self, session: Session) -> None:
        run = await session.handle.submit("", silent=True, store_history=False)
        await run.wait()
