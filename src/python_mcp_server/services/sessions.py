"""`SessionManager`: named sessions of kernels, per-session FIFO, limits, expiry and supervision.

Supervision (every `health_check_interval_s`): an idle kernel whose process ended, or that fails
`kernel_probe_failures` kernel_info checks in a row on the control channel, is replaced by a fresh
kernel, and the model is told on its next call (when, why, variables lost). Sessions unused for
`session_idle_timeout_s` are shut down. New kernels come from the warm pool when it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import anyio

from python_mcp_server.config import SECRET_ENV_VARS, ServerConfig
from python_mcp_server.errors import (
    InvalidArgumentError,
    KernelBusyError,
    KernelDiedError,
    KernelNotFoundError,
    ResourceLimitError,
    ServerError,
    SessionDeletedError,
    SessionExistsError,
    SessionExpiredError,
    SessionLimitError,
)
from python_mcp_server.health.monitor import HealthMonitor
from python_mcp_server.kernels import ExitInfo, KernelBackend, KernelHandle, KernelSpec
from python_mcp_server.services.pool import KernelPool
from python_mcp_server.services.session import RestartEvent, RestartOutcome, Session, now_iso
from python_mcp_server.services.snapshot import StateTransfer

logger = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLOSE_TIMEOUT_S = 15.0
_STOP_GRACE_S = 1.0  # at shutdown, how long an interrupted cell may take to stop
_EXPIRED_MEMORY = 256
_REQUESTED = "restarted on request (restart_kernel, or a cell that could not be interrupted)"


SessionHook = Callable[[Session], Awaitable[None]]
KernelHook = Callable[[KernelHandle], Awaitable[object]]


class SessionManager:
    """Owns every session. Use as `async with SessionManager(config, backend) as sessions`."""

    def __init__(
        self, config: ServerConfig, backend: KernelBackend, monitor: HealthMonitor | None = None
    ) -> None:
        self._config = config
        self._backend = backend
        self.monitor = monitor or HealthMonitor()
        self.pool = KernelPool(config.kernel_pool_size, self._cold_start, self._memory_ok)
        self._sessions: dict[str, Session] = {}
        self._starting: dict[str, asyncio.Event] = {}
        self._expired: OrderedDict[str, float] = OrderedDict()
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._targets: OrderedDict[str, str] = OrderedDict()
        self._create_lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._stopping = False
        self.on_restart: list[SessionHook] = []
        # run on every new kernel before it is handed out (pool kernels: in the background)
        self.on_kernel_start: list[KernelHook] = []

    async def __aenter__(self) -> Self:
        self._config.workspace_root.mkdir(parents=True, exist_ok=True)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        self.pool.refill()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def stopping(self) -> bool:
        """The server is shutting down: running cells were interrupted so their calls can answer."""
        return self._stopping

    async def interrupt_running(self, grace_s: float = _STOP_GRACE_S) -> int:
        """Interrupt every running cell because the server is stopping; returns how many.

        Their calls then end with the cell's KeyboardInterrupt and say why, within the server's
        grace period, instead of being cut off. The kernel of a cell still running `grace_s`
        later (it ignores the interrupt) is stopped, so its call ends too.
        """
        self._stopping = True
        running = [s for s in self._sessions.values() if s.running and not s.closed]
        for session in running:
            with contextlib.suppress(ServerError, OSError, RuntimeError):
                await session.handle.interrupt()
        if not running:
            return 0
        logger.info("interrupted %d running cell(s) for shutdown", len(running))
        with anyio.move_on_after(grace_s):
            for session in running:
                async with session.lock:  # free once the interrupted call has ended
                    pass
        for session in running:
            if session.running:
                logger.info(
                    "session %r ignored the interrupt; stopping its kernel", session.session_id
                )
                with contextlib.suppress(Exception):
                    await session.handle.aclose()
        return len(running)

    async def aclose(self) -> None:
        """Shut every kernel down, concurrently and bounded, even when cancelled."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        sessions = list(self._sessions.values())
        self._sessions.clear()
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True) as scope:
            results = await asyncio.gather(
                self.pool.aclose(),
                *(s.handle.aclose() for s in sessions),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    logger.error("kernel shutdown failed", exc_info=result)
        if scope.cancelled_caught:
            logger.error("kernels did not shut down within %s s", _CLOSE_TIMEOUT_S)

    # ----------------------------------------------------------------- kernels

    def kernel_spec(self) -> KernelSpec:
        root = self._config.workspace_root
        return KernelSpec(
            python=self._config.kernel_python,
            cwd=root,
            env={
                "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "PYTHON_MCP_SERVER_WORKSPACE": str(root),
                "PYTHONUNBUFFERED": "1",
            },
            start_timeout_s=self._config.kernel_start_timeout_s,
            unset_env=SECRET_ENV_VARS,
        )

    async def _cold_start(self) -> KernelHandle:
        handle = await self._backend.start(self.kernel_spec())
        try:
            for hook in self.on_kernel_start:
                await hook(handle)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await handle.aclose()
            raise
        return handle

    async def start_kernel(self) -> KernelHandle:
        """A ready kernel: from the warm pool when it has one, else started now."""
        handle = await self.pool.take()
        if handle is not None:
            return handle
        return await self._cold_start()

    def _memory_ok(self) -> bool:
        floor = self._config.min_free_memory_mb
        return floor <= 0 or self.monitor.available_mb() >= floor

    def check_memory(self) -> None:
        """Refuse a new session while host available memory is below the configured floor."""
        floor = self._config.min_free_memory_mb
        if floor <= 0:
            return
        available = self.monitor.available_mb()
        if available < floor:
            raise ResourceLimitError(
                f"No new session was started: the host has {available} MB of memory available, "
                f"below this server's floor of {floor} MB (--min-free-memory-mb). Delete "
                "sessions you no longer need with delete_session, or free memory, then try again."
            )

    # ---------------------------------------------------------------- sessions

    def ids(self) -> list[str]:
        return sorted(self._sessions)

    def sessions(self) -> list[Session]:
        return [self._sessions[k] for k in sorted(self._sessions)]

    def get(self, session_id: str) -> Session:
        """The live session `session_id`; raises if unknown or expired (no kernel is started)."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        if session_id in self._expired:
            raise SessionExpiredError(session_id, self._config.session_idle_timeout_s)
        if session_id in self._deleted:
            raise SessionDeletedError(session_id, self.ids())
        raise KernelNotFoundError(session_id, self.ids())

    async def acquire(self, session_id: str) -> Session:
        """The session to run on: `default` is started on first use, any other must exist."""
        if session_id == DEFAULT_SESSION and session_id not in self._sessions:
            async with self._create_lock:
                if session_id not in self._sessions and session_id not in self._starting:
                    expired = session_id in self._expired
                    try:
                        session = await self._create(session_id, "Started on first use.")
                    except SessionLimitError as exc:
                        raise SessionLimitError(exc.limit, self.ids(), session_id) from exc
                    if expired:
                        session.notices.append(
                            f"Session {session_id!r} had expired after "
                            f"{self._config.session_idle_timeout_s:.0f} s without use, so a fresh "
                            "kernel was started; earlier variables are gone."
                        )
        starting = self._starting.get(session_id)
        if starting is not None:
            await starting.wait()
        return self.get(session_id)

    async def create(
        self, session_id: str | None = None, description: str | None = None
    ) -> Session:
        if session_id is None:
            session_id = f"s-{secrets.token_urlsafe(12)}"
        elif not _SESSION_ID.fullmatch(session_id):
            raise InvalidArgumentError(
                f"session_id {session_id!r} is not usable: use 1-64 letters, digits, '_', '-' or "
                "'.', starting with a letter or digit; or omit it to get a generated id."
            )
        return await self._create(session_id, description)

    async def _create(self, session_id: str, description: str | None) -> Session:
        if session_id in self._sessions or session_id in self._starting:
            raise SessionExistsError(session_id)
        live = len(self._sessions) + len(self._starting)
        if live >= self._config.max_sessions:
            raise SessionLimitError(self._config.max_sessions, self.ids())
        self.check_memory()
        started = self._starting[session_id] = asyncio.Event()
        try:
            handle = await self.start_kernel()
            session = Session(session_id=session_id, description=description, handle=handle)
            self._sessions[session_id] = session
        finally:
            del self._starting[session_id]
            started.set()
        self._expired.pop(session_id, None)
        self._deleted.pop(session_id, None)
        logger.info("session %s started (kernel pid %s)", session_id, handle.pid)
        return session

    async def delete(self, session_id: str, caller: str | None = None) -> bool:
        """End the session. Returns whether it was `caller`'s current session (then the caller's
        calls without a session id go to `default` again)."""
        session = self.get(session_id)
        self._sessions.pop(session_id, None)
        self._deleted[session_id] = None
        while len(self._deleted) > _EXPIRED_MEMORY:
            self._deleted.popitem(last=False)
        session.generation += 1  # a cell still running sees its kernel go and does not restart it
        session.closed = True
        # other callers whose current session this was keep it, and are told it was deleted on
        # their next call rather than silently landing in the shared default kernel
        was_current = caller is not None and self._targets.get(caller) == session_id
        if was_current:
            assert caller is not None
            del self._targets[caller]
        await session.handle.aclose()
        logger.info("session %s deleted", session_id)
        return was_current

    async def restart(
        self,
        session: Session,
        reason: str | None = None,
        *,
        preserve_state: bool = False,
        told: bool = False,
    ) -> RestartOutcome:
        """Replace the session's kernel with a fresh one (from the pool when it has one).

        Variables are lost, unless `preserve_state`: then the user's picklable globals are moved
        into the new kernel and the outcome lists what was restored and what was dropped.
        `reason` is kept for get_kernel_health and, unless the caller `told` the user itself,
        reported by the session's next call.
        """
        async with session.restart_lock:  # one replacement at a time, or kernels leak
            return await self._restart(session, reason, preserve_state, told)

    def _check_open(self, session: Session) -> None:
        if session.closed:
            self.get(session.session_id)  # raises: the session was deleted or expired
            raise KernelNotFoundError(session.session_id, self.ids())

    async def _restart(
        self, session: Session, reason: str | None, preserve_state: bool, told: bool = False
    ) -> RestartOutcome:
        self._check_open(session)
        transfer = StateTransfer() if preserve_state else None
        session.restarting = True
        try:
            old = session.handle
            if transfer is not None:
                await self._save_state(session, old, transfer)
            session.generation += 1
            await old.aclose()
            new = await self.start_kernel()
            if session.closed:  # deleted while the new kernel started
                await new.aclose()
                self._check_open(session)
            session.handle = new
            session.execution_count = 0
            session.probe_failures = 0
            if transfer is not None and transfer.saved:
                await transfer.load(session.handle, self._state_timeout())
            if reason and not told:
                session.notices.append(reason)
            session.restarts.append(RestartEvent(time.time(), reason or _REQUESTED))
            del session.restarts[:-20]
            logger.info(
                "session %s restarted (kernel pid %s)", session.session_id, session.handle.pid
            )
        finally:
            session.restarting = False
            if transfer is not None:
                transfer.cleanup()
        for hook in self.on_restart:
            await hook(session)
        if transfer is None:
            return RestartOutcome()
        return RestartOutcome(
            asked=True,
            preserved=bool(transfer.restored),
            restored=sorted(transfer.restored),
            dropped=sorted(transfer.dropped, key=lambda d: d.name),
            problem=transfer.problem,
        )

    def _state_timeout(self) -> float:
        return max(30.0, self._config.execution_timeout_s)

    async def _save_state(
        self, session: Session, handle: KernelHandle, transfer: StateTransfer
    ) -> None:
        if handle.exit_info() is not None:
            transfer.problem = "the old kernel had already ended, so there was nothing to save"
            return
        if session.running:
            with contextlib.suppress(KernelDiedError):
                await handle.interrupt()  # the save queues behind the running cell
        await transfer.save(handle, self._state_timeout())

    # ------------------------------------------------------ per-caller targets

    def target(self, caller: str | None) -> str:
        if caller is None:
            return DEFAULT_SESSION
        return self._targets.get(caller, DEFAULT_SESSION)

    def set_target(self, caller: str, session_id: str) -> None:
        self.get(session_id)
        self._targets[caller] = session_id
        self._targets.move_to_end(caller)
        while len(self._targets) > 4096:
            self._targets.popitem(last=False)

    # --------------------------------------------------------------- supervise

    async def _supervise(self) -> None:
        interval = self._config.health_check_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_once()
            except Exception:  # the supervisor must keep running; each failure is logged
                logger.exception("session supervision failed")

    async def check_once(self) -> None:
        """One supervision round: expire idle sessions, replace dead or unresponsive idle kernels,
        and keep the warm pool stocked."""
        now = time.time()
        idle_limit = self._config.session_idle_timeout_s
        checks = []
        for session in list(self._sessions.values()):
            if session.lock.locked() or session.restarting:
                session.probe_failures = 0
                continue
            if idle_limit > 0 and now - session.last_used > idle_limit:
                await self._expire(session)
                continue
            checks.append(self._check_session(session))
        for outcome in await asyncio.gather(*checks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.error("checking a session failed", exc_info=outcome)
        if not self._closing:
            self.pool.discard_dead()
        self.monitor.forget({pid for s in self._sessions.values() if (pid := s.handle.pid)})

    async def _check_session(self, session: Session) -> None:
        info = session.handle.exit_info()
        if info is not None:
            if not self._closing:
                await self._recover_dead(session, info)
            return
        handle = session.handle
        timeout = self._config.kernel_probe_timeout_s
        try:
            await handle.request("kernel_info_request", {}, timeout, control=True)
        except KernelBusyError:
            if session.handle is handle and not session.lock.locked():
                session.probe_failures += 1
        except KernelDiedError:
            return  # noticed as a death on the next round
        else:
            session.probe_failures = 0
            return
        if session.probe_failures >= self._config.kernel_probe_failures and not self._closing:
            await self._recover_unresponsive(session, handle)

    async def _expire(self, session: Session) -> None:
        self._sessions.pop(session.session_id, None)
        session.generation += 1
        session.closed = True
        self._expired[session.session_id] = time.time()
        while len(self._expired) > _EXPIRED_MEMORY:
            self._expired.popitem(last=False)
        await session.handle.aclose()
        logger.info("session %s expired after idling", session.session_id)

    async def _recover_dead(self, session: Session, info: ExitInfo) -> None:
        async with session.lock:
            if session.handle.exit_info() is None:
                return
            detail = f" Its last output: {info.stderr_tail[-400:]}" if info.stderr_tail else ""
            await self.restart(
                session,
                f"At {now_iso()} the kernel of session {session.session_id!r} {info.describe()} "
                f"while idle; it was restarted automatically and all variables were lost.{detail}",
            )

    async def _recover_unresponsive(self, session: Session, handle: KernelHandle) -> None:
        if session.lock.locked() or session.handle is not handle:
            session.probe_failures = 0
            return
        async with session.lock:
            failures = session.probe_failures
            pid = handle.pid
            stopped = pid is not None and self.monitor.process_status(pid) == "stopped"
            why = "; its process was stopped (SIGSTOP or a debugger)" if stopped else ""
            logger.warning(
                "session %s: kernel pid %s unresponsive (%s failed checks)%s",
                session.session_id,
                pid,
                failures,
                why,
            )
            await self.restart(
                session,
                f"At {now_iso()} the kernel of session {session.session_id!r} stopped answering "
                f"while idle (no reply to {failures} kernel_info checks of "
                f"{self._config.kernel_probe_timeout_s:g} s each{why}); it was restarted "
                "automatically and all variables were lost.",
            )
