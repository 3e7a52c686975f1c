"""`KernelSession`: one named kernel, and the only code that changes a session's state.

It owns the session's FIFO turn (calls that use the kernel hold it for their whole duration), its
lifecycle (see `lifecycle.py`), the generation counter (bumped whenever the kernel is replaced or
closed, so a cell still running can tell), and the operations: `run_cell` (returning a typed
`CellOutcome`), `interrupt`, `restart`, `close`, `check` (supervision) and the silent requests
that look inside the kernel. `SessionManager` keeps the registry and calls these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import KernelBusyError, KernelDiedError, ServerError
from python_mcp_server.kernels import ExecutionRun, ExitInfo, KernelLimits, OutputCallback, Reply
from python_mcp_server.services.environments import SessionEnvironment
from python_mcp_server.services.kernel_start import ReadyKernel
from python_mcp_server.services.lifecycle import Lifecycle, PublicState, SessionState
from python_mcp_server.services.models import KernelLimitsInfo, SessionInfo
from python_mcp_server.services.outcome import (
    CellOutcome,
    KernelDeath,
    asked_to_exit,
    interrupt_landed,
    reply_after_interrupt,
)
from python_mcp_server.services.records import (
    CellHistory,
    CellRecord,
    KernelReplaced,
    RestartEvent,
    RestartOutcome,
    iso,
    now_iso,
)
from python_mcp_server.services.snapshot import StateTransfer

logger = logging.getLogger(__name__)

S = SessionState
_EXIT_GRACE_S = 5.0  # a kernel asked to exit (exit()) gets this long to end
_PROBE_STOP_S = 5.0  # a silent request that timed out gets this long to stop once interrupted
_KEPT_RESTARTS = 20
_REQUESTED = "restarted on request (restart_kernel, or a cell that could not be interrupted)"


class KernelSource(Protocol):
    async def take(self, limits: KernelLimits | None = None) -> ReadyKernel:
        """A ready kernel (from the warm pool when it has one)."""
        ...

    async def replace(self, old: ReadyKernel, limits: KernelLimits | None = None) -> ReadyKernel:
        """A kernel in place of `old` (a restart), which it closes."""
        ...

    def state_transfer(self) -> StateTransfer:
        """A folder the old and the new kernel of a restart can both reach."""
        ...


class KernelSession:
    """One named kernel. Create it, `start` it, then use it inside `turn()`."""

    def __init__(
        self,
        session_id: str,
        description: str | None,
        *,
        config: ServerConfig,
        kernels: KernelSource,
        gone: Callable[[str], ServerError],
        limits: KernelLimits | None = None,
    ) -> None:
        self.session_id = session_id
        self.limits = limits  # enforced on every kernel of this session; None: not sandboxed
        self.description = description
        self.created = time.time()
        self.last_used = self.created
        self._config = config
        self._kernels = kernels
        self._gone = gone  # the error for a call on this session after it was closed
        self._life = Lifecycle()
        self._kernel: ReadyKernel | None = None
        self._started = asyncio.Event()
        self._turn = asyncio.Lock()
        self._restart_lock = asyncio.Lock()
        self._settler: asyncio.Task[None] | None = None  # holds the turn after a cancelled cell
        self._generation = 0
        self._execution_count = 0
        self._notices: list[str] = []
        self._probe_failures = 0
        self._stopping = False  # the server is shutting down
        self._restarts: list[RestartEvent] = []
        self.history = CellHistory()
        self.environment: SessionEnvironment | None = None  # None: the server's, shared

    @property
    def kernel(self) -> ReadyKernel:
        if self._kernel is None:
            raise RuntimeError(f"session {self.session_id!r} has not started")
        return self._kernel

    @property
    def state(self) -> SessionState:
        return self._life.state

    @property
    def public_state(self) -> PublicState:
        return self._life.public(self._kernel is not None and self.exit_info() is not None)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def execution_count(self) -> int:
        return self._execution_count

    @property
    def running(self) -> bool:
        """A cell runs in the kernel (or is being settled after its call was cancelled)."""
        return self._life.running

    @property
    def closed(self) -> bool:
        return self._life.closed

    @property
    def in_use(self) -> bool:
        """A call holds the turn, or the kernel is being replaced: supervision leaves it alone."""
        return self._turn.locked() or self._life.state in (S.STARTING, S.RESTARTING)

    @property
    def pid(self) -> int | None:
        return self._kernel.handle.pid if self._kernel is not None else None

    @property
    def python(self) -> str:
        return self.kernel.handle.python

    @property
    def restarts(self) -> tuple[RestartEvent, ...]:
        return tuple(self._restarts)

    def exit_info(self) -> ExitInfo | None:
        """How the current kernel process ended, or None while it runs."""
        return self.kernel.exit_info()

    def info(self) -> SessionInfo:
        return SessionInfo(
            session_id=self.session_id,
            description=self.description,
            created=iso(self.created),
            last_used=iso(self.last_used),
            execution_count=self._execution_count,
            state=self.public_state,
            kernel_pid=self.pid,
            python=self.python,
            limits=KernelLimitsInfo.of(self.limits),
            environment="base" if self.environment is None else "own",
            dependencies=None if self.environment is None else list(self.environment.requirements),
        )

    def touch(self) -> None:
        self.last_used = time.time()

    def notify(self, text: str) -> None:
        """Tell the model `text` on the session's next call (something happened to its kernel)."""
        self._notices.append(text)

    # ------------------------------------------------------------- start and turn

    async def start(self) -> None:
        """Get the first kernel. On failure the session stays unusable and should be dropped."""
        try:
            self._kernel = await self._kernels.take(self.limits)
            self._life.move(S.IDLE)
            self.touch()  # idle from now, not from before a kernel start that may take a while
        finally:
            self._started.set()

    async def wait_started(self) -> None:
        await self._started.wait()

    @asynccontextmanager
    async def turn(self, wait_s: float | None = None) -> AsyncIterator[KernelSession]:
        """Hold the session's FIFO turn. With `wait_s`, give up after waiting that long behind a
        running cell. Raises the session's gone error if it was closed meanwhile."""
        if wait_s is None:
            await self._turn.acquire()
        else:
            acquired = False
            with anyio.move_on_after(wait_s):
                await self._turn.acquire()
                acquired = True
            if not acquired:
                raise KernelBusyError(
                    f"Session {self.session_id!r} is still running code after {wait_s:g} s. Try "
                    "again when it finishes, or call interrupt_kernel to stop it."
                )
        try:
            self._check_open()
            self.touch()
            yield self
        finally:
            self.touch()  # idle from the end of the call, however long it ran
            if self._settler is None:  # else the settle task frees the turn when it is done
                self._turn.release()

    async def wait_turn_free(self) -> None:
        async with self._turn:
            pass

    def _check_open(self) -> None:
        if self._life.closed:
            raise self._gone(self.session_id)

    # ------------------------------------------------------------------- cells

    async def run_cell(
        self, code: str, on_output: OutputCallback | None, limit_s: float
    ) -> CellOutcome:
        """Run one cell (the caller holds the turn): wait at most `limit_s`, then interrupt, and
        restart if the interrupt does not land; a kernel that dies is replaced. Code is never
        sent twice."""
        notices = tuple(self._notices)
        self._notices.clear()
        self.touch()
        self._life.move(S.BUSY)
        generation = self._generation
        try:
            before, kept = await self._before_cell()
            generation, kernel = self._generation, self.kernel
            submitted = time.perf_counter()
            run = await kernel.handle.submit(code, on_output)
            outcome = CellOutcome(
                submitted_at=submitted,
                generation=generation,
                tracks_files=kernel.tracks_files,
                notices=notices + before,
                state_kept=not notices and kept,
            )
            outcome = await self._finish_cell(run, outcome, limit_s, kernel)
        except asyncio.CancelledError:
            self._settle_after_cancel(generation)
            raise
        finally:
            if self._settler is None:
                self._life.settle()
            self.touch()
        count = outcome.reply.content.get("execution_count") if outcome.reply else None
        if isinstance(count, int):
            self._execution_count = count
        return outcome.but(
            execution_count=self._execution_count if outcome.reply else None,
            server_stopping=self._stopping,
        )

    async def _before_cell(self) -> tuple[tuple[str, ...], bool]:
        """Replace a kernel that ended since the last call, and pick up late output. Returns the
        notices for the model and whether the variables survived."""
        notes: list[str] = []
        kept = True
        dead = self.kernel.exit_info()
        if dead is not None:  # it ended after the last call, before the supervisor noticed
            await self.restart(
                f"At {now_iso()} the kernel {dead.describe()} after a call; it was restarted "
                "before the next one ran.",
                told=True,
                why=f"the kernel {dead.describe()}",
            )
            self._life.move(S.BUSY)
            kept = False
            notes.append(
                f"The kernel {dead.describe()} after the previous call; it was restarted before "
                "running this code, and all variables were lost."
            )
        late = self.kernel.handle.take_late_output()
        if late:
            notes.append(
                "Output printed after an earlier call had returned (by a thread or a background "
                f"process), kept so it is not lost:\n{late}"
            )
        return tuple(notes), kept

    async def _finish_cell(
        self, run: ExecutionRun, outcome: CellOutcome, limit_s: float, kernel: ReadyKernel
    ) -> CellOutcome:
        try:
            with anyio.fail_after(limit_s):  # a cancel scope: no extra task per cell
                reply = await run.wait()
        except TimeoutError:
            return await self._stop_overrun(run, outcome)
        except KernelDiedError as exc:
            return outcome.but(death=await self._after_death(exc, outcome.generation, kernel))
        outcome = outcome.but(reply=reply)
        if asked_to_exit(reply):
            with anyio.move_on_after(_EXIT_GRACE_S):
                await kernel.handle.wait_exit()
            await self.restart(
                f"At {now_iso()} a cell called exit() or quit().",
                told=True,
                why="exit() was called",
            )
            return outcome.but(exited=True, state_kept=False)
        return outcome

    async def _stop_overrun(self, run: ExecutionRun, outcome: CellOutcome) -> CellOutcome:
        """Interrupt a cell that ran too long; restart the kernel if the interrupt does not land.

        The time limit and the cell's end can cross (a tiny `timeout_s`): the interrupt waits
        until the kernel has begun the cell (before that it would be ignored), and a cell whose
        reply the kernel made before the interrupt was sent finished on its own: it is not a
        timeout."""
        grace = self._config.interrupt_grace_s
        try:
            self._life.interrupting()
            with anyio.fail_after(grace):
                await run.wait_begun()
            sent = time.time()
            await self.kernel.handle.interrupt()
            reply = await reply_after_interrupt(run, grace)
        except (TimeoutError, KernelDiedError):
            await self.restart(
                f"At {now_iso()} a cell ran past its time limit and did not stop when interrupted.",
                told=True,
                why="a cell ran past its time limit and ignored the interrupt",
            )
            return outcome.but(overran="restarted", state_kept=False)
        if reply is not None and not interrupt_landed(reply, sent):
            return outcome.but(reply=reply)  # it finished just as its time ran out
        return outcome.but(reply=reply, overran="interrupted")

    async def _after_death(
        self, exc: KernelDiedError, generation: int, kernel: ReadyKernel
    ) -> KernelDeath:
        """The kernel ended while the cell ran: say why, and replace it unless that was meant."""
        if self._life.closed:
            return KernelDeath(str(exc), "closed")
        if self._generation != generation:
            return KernelDeath(str(exc), "restarted")
        self._life.move(S.DEAD)
        if self._stopping:
            return KernelDeath(str(exc), "shutdown")
        why = str(exc)[:1].lower() + str(exc)[1:].rstrip(".")
        try:
            await self.restart(f"At {now_iso()}: {exc}", told=True, why=why)
        except ServerError as failure:  # no new kernel yet (a gateway out of reach): say both
            return KernelDeath(f"{exc} {failure}", "unreplaced")
        info = kernel.exit_info()
        return KernelDeath(str(exc), "replaced", info.stderr_tail if info else "")

    def _settle_after_cancel(self, generation: int) -> None:
        """The client cancelled: interrupt the kernel, then free the turn. Runs in the background
        because the cancelled call cannot wait; the turn is released when it ends."""

        async def settle() -> None:
            try:
                if self._generation == generation and self.exit_info() is None:
                    await self.kernel.handle.interrupt()
                    try:
                        await asyncio.wait_for(self._idle(), self._config.interrupt_grace_s)
                    except (TimeoutError, KernelDiedError):
                        if self._stopping or self._life.closed:
                            return  # closing: the kernel goes with the session
                        await self.restart(
                            "A cancelled cell could not be interrupted; the kernel was restarted "
                            "and variables were lost.",
                            why="a cancelled cell could not be interrupted",
                        )
            except Exception:  # background boundary: log, never keep the turn
                logger.exception("cleanup after a cancelled call failed")
            finally:
                self._settler = None
                self._life.settle()
                self._turn.release()

        self._settler = asyncio.get_running_loop().create_task(settle())

    async def _idle(self) -> None:
        run = await self.kernel.handle.submit("", silent=True, store_history=False)
        await run.wait()

    def record(self, cell: CellRecord) -> None:
        self.history.append(cell)

    # ------------------------------------------------------- silent requests

    async def evaluate(self, expressions: dict[str, str], timeout_s: float) -> Reply:
        """Evaluate user expressions with a silent, history-free request (the caller holds the
        turn). On timeout the kernel is interrupted and TimeoutError raised."""
        handle = self.kernel.handle
        run = await handle.submit(
            "", None, silent=True, store_history=False, user_expressions=expressions
        )
        try:
            return await asyncio.wait_for(run.wait(), timeout_s)
        except TimeoutError:
            try:
                await handle.interrupt()
                await asyncio.wait_for(run.wait(), _PROBE_STOP_S)
            except (TimeoutError, KernelDiedError):
                logger.warning("a request in session %s did not stop", self.session_id)
            raise

    async def request(
        self, msg_type: str, content: dict[str, Any], timeout_s: float, *, control: bool = False
    ) -> Reply:
        """A shell (or control) request such as complete_request or kernel_info_request."""
        return await self.kernel.handle.request(msg_type, content, timeout_s, control=control)

    # ------------------------------------------------------- interrupt, restart

    async def interrupt(self) -> bool:
        """Send an interrupt (like Ctrl-C); returns whether a cell was running."""
        running = self._life.running
        self._life.interrupting()
        await self.kernel.handle.interrupt()
        return running

    async def restart(
        self,
        reason: str | None = None,
        *,
        preserve_state: bool = False,
        told: bool = False,
        why: str = "restart_kernel was called",
    ) -> RestartOutcome:
        """Replace the kernel with a fresh one (from the pool when it has one).

        Variables are lost, unless `preserve_state`: then the user's picklable globals are moved
        into the new kernel and the outcome lists what was restored and what was dropped.
        `reason` is kept for get_kernel_health and, unless the caller `told` the user itself,
        reported by the session's next call; `why`, short, marks the restart in the history.
        """
        async with self._restart_lock:  # one replacement at a time, or kernels leak
            self._check_open()
            transfer = self._kernels.state_transfer() if preserve_state else None
            try:
                await self._swap(reason, told, transfer, why)
            finally:
                if transfer is not None:
                    transfer.cleanup()
        if transfer is None:
            return RestartOutcome()
        return RestartOutcome(
            asked=True,
            preserved=bool(transfer.restored),
            restored=sorted(transfer.restored),
            dropped=sorted(transfer.dropped, key=lambda d: d.name),
            problem=transfer.problem,
        )

    async def _swap(
        self, reason: str | None, told: bool, transfer: StateTransfer | None, why: str
    ) -> None:
        old = self.kernel
        if transfer is not None:
            await self._save_state(transfer)
        self._life.move(S.RESTARTING)
        self._generation += 1
        try:
            new = await self._kernels.replace(old, self.limits)
        except BaseException:
            if not self._life.closed:
                self._life.move(S.DEAD)
            raise
        if self._life.closed:  # deleted while the new kernel started
            await new.aclose()
            self._check_open()
        self._kernel = new
        self._execution_count = 0
        self._probe_failures = 0
        if transfer is not None and transfer.saved:
            await transfer.load(new.handle, self._state_timeout())
        if reason and not told:
            self._notices.append(reason)
        self._restarts.append(RestartEvent(time.time(), reason or _REQUESTED))
        carried = tuple(sorted(transfer.restored)) if transfer is not None else ()
        self.history.mark(KernelReplaced(time.time(), why, self._generation, carried))
        del self._restarts[:-_KEPT_RESTARTS]
        self._life.move(S.IDLE)
        logger.info("session %s restarted (kernel pid %s)", self.session_id, self.pid)

    def _state_timeout(self) -> float:
        return max(30.0, self._config.execution_timeout_s)

    async def _save_state(self, transfer: StateTransfer) -> None:
        handle = self.kernel.handle
        if handle.exit_info() is not None:
            transfer.problem = "the old kernel had already ended, so there was nothing to save"
            return
        if self._life.running:
            with contextlib.suppress(KernelDiedError):
                await handle.interrupt()  # the save queues behind the running cell
        await transfer.save(handle, self._state_timeout())

    # ------------------------------------------------------------------ close

    async def close(self, *, release: bool = False) -> None:
        """End the session for good (deleted or expired): a cell still running sees its kernel
        go and does not restart it. With `release` (the server stops), a kernel other servers
        share is left to them."""
        if self._life.closed:
            return
        self._generation += 1
        self._life.move(S.CLOSED)
        if self._kernel is not None:
            await (self._kernel.release() if release else self._kernel.aclose())

    async def interrupt_for_shutdown(self) -> None:
        """The server is stopping: interrupt the running cell so its call can still answer."""
        self._stopping = True
        with contextlib.suppress(ServerError, OSError, RuntimeError):
            await self.kernel.handle.interrupt()

    async def stop_kernel(self) -> None:
        """Stop the kernel now (a cell that ignored the interrupt at shutdown): its call ends."""
        logger.info("session %r ignored the interrupt; stopping its kernel", self.session_id)
        with contextlib.suppress(ServerError, OSError, RuntimeError):
            await self.kernel.aclose()

    # ------------------------------------------------------------- supervision

    async def check(self, stopped: Callable[[int], bool]) -> None:
        """One supervision look: replace a kernel that ended, or one that failed
        `kernel_probe_failures` kernel_info checks in a row on the control channel."""
        if self.in_use or not self._life.live:
            self._probe_failures = 0
            return
        info = self.exit_info()
        if info is not None:
            await self._recover_dead(info)
            return
        handle = self.kernel.handle
        try:
            await handle.request(
                "kernel_info_request", {}, self._config.kernel_probe_timeout_s, control=True
            )
        except KernelBusyError:
            if self.kernel.handle is handle and not self._turn.locked():
                self._probe_failures += 1
        except KernelDiedError:
            return  # noticed as a death on the next round
        else:
            self._probe_failures = 0
            return
        if self._probe_failures >= self._config.kernel_probe_failures:
            await self._recover_unresponsive(handle, stopped)

    async def _recover_dead(self, info: ExitInfo) -> None:
        async with self._turn:
            if self._life.closed or self.exit_info() is None:
                return
            if self._life.state is not S.DEAD:
                self._life.move(S.DEAD)
            detail = f" Its last output: {info.stderr_tail[-400:]}" if info.stderr_tail else ""
            await self.restart(
                f"At {now_iso()} the kernel of session {self.session_id!r} {info.describe()} "
                f"while idle; it was restarted automatically and all variables were lost.{detail}",
                why=f"the kernel {info.describe()} while idle",
            )

    async def _recover_unresponsive(self, handle: object, stopped: Callable[[int], bool]) -> None:
        if self._turn.locked() or self.kernel.handle is not handle:
            self._probe_failures = 0
            return
        async with self._turn:
            if self._life.closed:
                return
            failures = self._probe_failures
            pid = self.pid
            why = (
                "; its process was stopped (SIGSTOP or a debugger)"
                if pid is not None and stopped(pid)
                else ""
            )
            logger.warning(
                "session %s: kernel pid %s unresponsive (%s failed checks)%s",
                self.session_id,
                pid,
                failures,
                why,
            )
            await self.restart(
                f"At {now_iso()} the kernel of session {self.session_id!r} stopped answering "
                f"while idle (no reply to {failures} kernel_info checks of "
                f"{self._config.kernel_probe_timeout_s:g} s each{why}); it was restarted "
                "automatically and all variables were lost.",
                why="the kernel stopped answering while idle",
            )
