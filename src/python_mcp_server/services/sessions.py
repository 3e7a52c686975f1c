"""`SessionManager`: the registry of named sessions (ids, limits, who uses which, what ended) and
their supervisor; each `KernelSession` owns its kernel, in the shape of jupyter_client's
`MultiKernelManager` delegating to one `KernelManager`.

Supervision (every `health_check_interval_s`): an idle kernel whose process ended, or that fails
`kernel_probe_failures` kernel_info checks in a row on the control channel, is replaced by a fresh
kernel, and the model is told on its next call (when, why, variables lost). Sessions unused for
`session_idle_timeout_s` are shut down. New kernels come from the warm pool when it has one.
At start (`env_prebuild`), the kernel runtime layer of per-session environments is built in the
background; a task of this manager, cancelled at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from types import TracebackType
from typing import Self

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    GatewayError,
    InvalidArgumentError,
    KernelNotFoundError,
    ListingRefusedError,
    ServerError,
    ServerStoppingError,
    SessionDeletedError,
    SessionExistsError,
    SessionExpiredError,
    SessionLimitError,
)
from python_mcp_server.health.monitor import HealthMonitor
from python_mcp_server.kernels import KernelBackend, KernelLimits
from python_mcp_server.services._layers import Layer
from python_mcp_server.services.artifacts import ArtifactStore
from python_mcp_server.services.environments import (
    EnvironmentStore,
    Progress,
    SessionEnvironment,
)
from python_mcp_server.services.incarnations import Incarnations
from python_mcp_server.services.kernel_start import KernelStarter, ReadyKernel
from python_mcp_server.services.oneshot import OneShots
from python_mcp_server.services.pool import KernelPool
from python_mcp_server.services.sandboxing import SandboxRuntime
from python_mcp_server.services.session import KernelSession, KernelSource
from python_mcp_server.services.shared_sessions import SessionDirectory, SharedSession
from python_mcp_server.workspace.output_folder import OutputFolder

logger = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLOSE_TIMEOUT_S = 15.0
_STOP_GRACE_S = 1.0  # at shutdown, how long an interrupted cell may take to stop
_TARGETS_MEMORY = 4096


def _session_directory(
    config: ServerConfig, backend: KernelBackend, kernels: KernelStarter
) -> SessionDirectory | None:
    """With kernels on a gateway, the sessions shared with the other servers pointed at it.
    The gateway's module is imported only then: its client (httpx, websockets) is not light."""
    if not backend.remote:
        return None
    from python_mcp_server.kernels.gateway import GatewayBackend

    if not isinstance(backend, GatewayBackend):
        return None
    token = (config.kernel_gateway_token or "").encode()
    return SessionDirectory(backend, kernels, token, config.kernel_start_timeout_s)


class SessionManager:
    """The registry of sessions and their supervisor; each `KernelSession` owns its own kernel.

    Use as `async with SessionManager(config, backend) as sessions`."""

    def __init__(
        self,
        config: ServerConfig,
        backend: KernelBackend,
        monitor: HealthMonitor | None = None,
        sandbox: SandboxRuntime | None = None,
    ) -> None:
        self._config = config
        self.sandbox = sandbox or SandboxRuntime()
        self.monitor = monitor or HealthMonitor()
        self.kernels = KernelStarter(config, backend, self.monitor.available_mb)
        self.kernels.sandboxed = self.sandbox.enabled
        self.kernels.workspace_owner = self.sandbox.workspace_owner
        self.environments = EnvironmentStore(config, self.sandbox.plan)
        # kernels on a gateway: sessions shared with the other servers pointed at it
        self.directory = _session_directory(config, backend, self.kernels)
        # each session's files, deleted when it ends; on this server's disk in either case
        self.outputs = ArtifactStore(config, in_workspace=not backend.remote)
        self.oneshots = OneShots(
            config,
            self.kernels,
            self.environments,
            self.outputs,
            limits=self._oneshot_limits,
            check_room=self._check_kernels,
            gone=self._gone,
        )
        self._sessions: dict[str, KernelSession] = {}
        self._starting: dict[str, KernelSession] = {}
        self._incarnations = Incarnations()  # what ended under each name, who saw which
        self._targets: OrderedDict[str, str] = OrderedDict()
        self._create_lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._prebuild: asyncio.Task[Layer | None] | None = None
        self._closing = False
        self._stopping = False  # the server is shutting down: no new cells or sessions

    async def __aenter__(self) -> Self:
        self._config.workspace_root.mkdir(parents=True, exist_ok=True)
        await self.environments.sweep()
        loop = asyncio.get_running_loop()
        self._supervisor = loop.create_task(self._supervise())
        self.kernels.pool.refill()
        if self._config.env_prebuild:
            self._prebuild = loop.create_task(self.environments.prepare())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def pool(self) -> KernelPool[ReadyKernel]:
        return self.kernels.pool

    def _oneshot_limits(self) -> KernelLimits | None:
        return self.kernels.default_limits if self.sandbox.enabled else None

    async def interrupt_running(self, grace_s: float = _STOP_GRACE_S) -> int:
        """Interrupt every running cell because the server is stopping; returns how many.

        Their calls then end with the cell's KeyboardInterrupt and say why, within the server's
        grace period, instead of being cut off. The kernel of a cell still running `grace_s`
        later (it ignores the interrupt) is stopped, so its call ends too.
        """
        self._stopping = True
        self.oneshots.stopping = True
        sessions = [*self._sessions.values(), *self.oneshots.sessions()]
        running = [s for s in sessions if s.running and not s.closed]
        for session in running:
            await session.interrupt_for_shutdown()
        if not running:
            return 0
        logger.info("interrupted %d running cell(s) for shutdown", len(running))
        with anyio.move_on_after(grace_s):
            for session in running:
                await session.wait_turn_free()  # free once the interrupted call has ended
        for session in running:
            if session.running:
                await session.stop_kernel()
        return len(running)

    async def aclose(self) -> None:
        """Shut every kernel down, concurrently and bounded, even when cancelled."""
        self._closing = True
        for task in (self._supervisor, self._prebuild):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        sessions = list(self._sessions.values())
        self._sessions.clear()
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True) as scope:
            results = await asyncio.gather(
                self.kernels.pool.aclose(),
                self.oneshots.aclose(),
                *(s.close(release=True) for s in sessions),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    logger.error("kernel shutdown failed", exc_info=result)
            for session in sessions:
                await self.environments.release(session.environment)
        if scope.cancelled_caught:
            logger.error("kernels did not shut down within %s s", _CLOSE_TIMEOUT_S)
        with anyio.CancelScope(shield=True):
            for session in sessions:
                await self._remove(
                    self.outputs.end(session.session_id, "ended when the server stopped")
                )

    # ---------------------------------------------------------------- sessions

    def ids(self) -> list[str]:
        return sorted(self._sessions)

    def sessions(self) -> list[KernelSession]:
        return [self._sessions[k] for k in sorted(self._sessions)]

    def get(self, session_id: str) -> KernelSession:
        """The live session `session_id`; raises if unknown or expired (no kernel is started)."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        raise self._gone(session_id)

    def _gone(self, session_id: str) -> ServerError:
        """The error for a session that is not (or no longer) there."""
        end = self._incarnations.last_end(session_id)
        if end is not None and end.how == "expired":
            return SessionExpiredError(session_id, self._config.session_idle_timeout_s)
        if end is not None:
            return SessionDeletedError(session_id, self.ids())
        return KernelNotFoundError(session_id, self.ids())

    def news(self, session_id: str, caller: str | None) -> str | None:
        """What a call of `caller` running code in `session_id` must be told first: the kernel it
        used under that name (or, for a call without identity, the last one) was deleted or
        expired, and this is a new one. Told once per caller."""
        return self._incarnations.news(session_id, caller)

    async def acquire(self, session_id: str) -> KernelSession:
        """The session to run on: `default` is started on first use, any other must exist."""
        if self._stopping:
            raise ServerStoppingError
        if session_id == DEFAULT_SESSION and session_id not in self._sessions:
            async with self._create_lock:
                if session_id not in self._sessions and session_id not in self._starting:
                    await self._create_default()
        starting = self._starting.get(session_id)
        if starting is not None:
            await starting.wait_started()
        return await self.lookup(session_id)

    async def lookup(self, session_id: str) -> KernelSession:
        """The live session `session_id`: this server's, or on a shared gateway one another
        server made (adopted: this server gets a handle on its kernel). Raises if unknown."""
        session = self._sessions.get(session_id)
        if session is not None or self.directory is None:
            return self.get(session_id)
        async with self._create_lock:
            if session_id not in self._sessions:
                try:
                    shared = await self.directory.find(session_id)
                except ListingRefusedError:  # only this server's sessions can be known
                    shared = None
                if shared is None:
                    raise self._gone(session_id)
                try:
                    await self._adopt(shared)
                except GatewayError as exc:  # it went while we looked
                    raise self._gone(session_id) from exc
        return self.get(session_id)

    async def refresh(self) -> None:
        """On a shared gateway: take in the sessions other servers made since (list_sessions)."""
        if self.directory is None:
            return
        async with self._create_lock:
            try:
                for shared in await self.directory.listing():
                    if shared.session_id not in self._sessions | self._starting:
                        await self._adopt(shared)
            except GatewayError as exc:  # the sessions this server has are still listed
                logger.warning("the sessions on the gateway could not be listed: %s", exc)

    async def _adopt(self, shared: SharedSession) -> None:
        assert self.directory is not None
        ready = await self.directory.adopt(shared)
        session = KernelSession(
            shared.session_id,
            shared.description,
            config=self._config,
            kernels=self.directory.kernels(self.kernels, shared, self._ended_elsewhere, ready),
            gone=self._gone,
        )
        session.created = shared.created
        await session.start()
        self._sessions[shared.session_id] = session
        self._incarnations.started(shared.session_id, implicit=False)
        self.outputs.begin(shared.session_id)
        logger.info("session %s adopted from the gateway", shared.session_id)

    async def _shared_elsewhere(self, session_id: str) -> bool:
        """Whether another server sharing the gateway has a session of this id. A gateway that
        does not list its kernels cannot tell: then each server has its own sessions."""
        assert self.directory is not None
        try:
            return await self.directory.find(session_id) is not None
        except ListingRefusedError as exc:
            logger.warning("%s", exc)
            return False

    def _forget_shared(self, session: KernelSession) -> None:
        if self.directory is not None:
            with contextlib.suppress(RuntimeError):  # a session that never got a kernel
                self.directory.forget(session.kernel)

    async def _ended_elsewhere(self, session_id: str) -> None:
        """A shared session's kernel is gone from the gateway with no successor."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        self._incarnations.ended(session_id, "deleted", at=time.time(), by=None)
        outputs = self.outputs.end(session_id, "ended: its kernel is gone from the gateway")
        await self.environments.release(session.environment)
        await self._remove(outputs)

    async def _create_default(self) -> None:
        try:
            await self._create(DEFAULT_SESSION, "Started on first use.", implicit=True)
        except SessionLimitError as exc:
            raise SessionLimitError(
                exc.limit, self.ids(), DEFAULT_SESSION, one_shot=exc.one_shot
            ) from exc

    def check_own_environment(self, what: str, instead: str) -> None:
        """Refuse an environment of its own for a kernel on a gateway: it is built on this
        server's disk, where that kernel cannot see it. `instead`: what to do."""
        if self.directory is not None:
            raise InvalidArgumentError(
                f"{what} is built on this server's disk, which kernels on the gateway at "
                f"{self.directory.gateway} cannot use. {instead}"
            )

    async def create(
        self,
        session_id: str | None = None,
        description: str | None = None,
        *,
        memory_mb: int | None = None,
        max_processes: int | None = None,
        cpus: float | None = None,
        dependencies: list[str] | None = None,
        python: str | None = None,
        progress: Progress | None = None,
    ) -> KernelSession:
        """A new session; with `dependencies` or `python`, in an environment of its own (built
        first; removed again if the kernel does not start)."""
        if self._stopping:
            raise ServerStoppingError
        if session_id is None:
            session_id = f"s-{secrets.token_urlsafe(12)}"
        elif not _SESSION_ID.fullmatch(session_id):
            raise InvalidArgumentError(
                f"session_id {session_id!r} is not usable: use 1-64 letters, digits, '_', '-' or "
                "'.', starting with a letter or digit; or omit it to get a generated id."
            )
        limits = self._limits(memory_mb, max_processes, cpus)
        if dependencies is None and python is None:
            return await self._create(session_id, description, limits)
        self.check_own_environment(
            "A session's own environment (dependencies, python)",
            "Create the session without them, then call install_dependencies: it installs "
            "into the session's kernel there.",
        )
        self._check_room(session_id)
        env = await self.environments.create(dependencies or [], python, progress)
        try:
            if progress is not None:
                await progress("Starting the session's kernel")
            return await self._create(session_id, description, limits, env)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.environments.release(env)
            raise

    def _limits(
        self, memory_mb: int | None, max_processes: int | None, cpus: float | None
    ) -> KernelLimits | None:
        """The session's limits (the server's unless lowered); None when not sandboxed."""
        asked = any(v is not None for v in (memory_mb, max_processes, cpus))
        if not self.sandbox.enabled:
            if asked:
                raise InvalidArgumentError(
                    "Per-session limits need sandboxed kernels, and this server runs them "
                    "without a sandbox (--sandbox off, or the host lacks bubblewrap); omit "
                    "memory_mb, max_processes and cpus."
                )
            return None
        return self.kernels.limits_for(memory_mb, max_processes, cpus)

    def _check_room(self, session_id: str) -> None:
        if session_id in self._sessions or session_id in self._starting:
            raise SessionExistsError(session_id)
        self._check_kernels()

    def _check_kernels(self) -> None:
        """Room for one more kernel: under --max-sessions (one-shot runs count) and the host's
        memory floor."""
        one_shot = self.oneshots.live
        if len(self._sessions) + len(self._starting) + one_shot >= self._config.max_sessions:
            raise SessionLimitError(self._config.max_sessions, self.ids(), one_shot=one_shot)
        self.kernels.check_memory()

    async def _create(
        self,
        session_id: str,
        description: str | None,
        limits: KernelLimits | None = None,
        env: SessionEnvironment | None = None,
        *,
        implicit: bool = False,
    ) -> KernelSession:
        self._check_room(session_id)
        if limits is None and self.sandbox.enabled:
            limits = self.kernels.default_limits
        source: KernelSource = (
            self.kernels if env is None else self.kernels.for_environment(env.python, env.read_only)
        )
        if self.directory is not None:
            if await self._shared_elsewhere(session_id):
                raise SessionExistsError(session_id)
            shared = SharedSession(session_id, "", description, time.time(), time.time())
            source = self.directory.kernels(source, shared, self._ended_elsewhere)
        session = KernelSession(
            session_id,
            description,
            config=self._config,
            kernels=source,
            gone=self._gone,
            limits=limits,
        )
        session.environment = env
        self._starting[session_id] = session
        try:
            await session.start()
            self._sessions[session_id] = session
        finally:
            del self._starting[session_id]
        self._incarnations.started(session_id, implicit=implicit)
        self.outputs.begin(session_id)
        logger.info("session %s started (kernel pid %s)", session_id, session.pid)
        return session

    async def delete(self, session_id: str, caller: str | None = None) -> bool:
        """End the session. Returns whether it was `caller`'s current session (then the caller's
        calls without a session id go to `default` again)."""
        session = await self.lookup(session_id)
        self._sessions.pop(session_id, None)
        self._incarnations.ended(session_id, "deleted", at=time.time(), by=caller)
        outputs = self.outputs.end(session_id, "was deleted (delete_session)")
        # other callers whose current session this was keep it, and are told it was deleted on
        # their next call rather than silently landing in the shared default kernel
        was_current = caller is not None and self._targets.get(caller) == session_id
        if was_current:
            assert caller is not None
            del self._targets[caller]
        self._forget_shared(session)
        await session.close()
        await self.environments.release(session.environment)
        await self._remove(outputs)
        logger.info("session %s deleted", session_id)
        return was_current

    async def _remove(self, outputs: OutputFolder | None) -> None:
        """Delete the files of a session that ended (in a worker thread: they may be many)."""
        if outputs is not None:
            await anyio.to_thread.run_sync(self.outputs.remove, outputs)

    # ------------------------------------------------------ per-caller targets

    def target(self, caller: str | None) -> str:
        if caller is None:
            return DEFAULT_SESSION
        return self._targets.get(caller, DEFAULT_SESSION)

    def set_target(self, caller: str, session_id: str) -> None:
        self.get(session_id)
        self._targets[caller] = session_id
        self._targets.move_to_end(caller)
        while len(self._targets) > _TARGETS_MEMORY:
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
            if not session.in_use and idle_limit > 0 and now - session.last_used > idle_limit:
                if not await self._used_elsewhere(session, now):
                    await self._expire(session)
            elif not self._closing:
                checks.append(session.check(self._stopped))
        for outcome in await asyncio.gather(*checks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.error("checking a session failed", exc_info=outcome)
        await self.oneshots.sweep()
        if not self._closing:
            self.kernels.pool.discard_dead()
            await self.environments.collect()
        self.monitor.forget({pid for s in self._sessions.values() if (pid := s.pid)})

    async def _used_elsewhere(self, session: KernelSession, now: float) -> bool:
        """On a shared gateway: whether another server ran a cell in the session within the
        idle timeout (then it is not expired here), or it cannot tell."""
        if self.directory is None or session.exit_info() is not None:
            return False
        last = await self.directory.last_used(session.kernel)
        if last is None:
            return True
        session.last_used = max(session.last_used, last)
        return now - session.last_used <= self._config.session_idle_timeout_s

    def _stopped(self, pid: int) -> bool:
        return self.monitor.process_status(pid) == "stopped"

    async def _expire(self, session: KernelSession) -> None:
        self._sessions.pop(session.session_id, None)
        self._incarnations.ended(
            session.session_id,
            "expired",
            at=time.time(),
            idle_s=self._config.session_idle_timeout_s,
        )
        idle = self._config.session_idle_timeout_s
        outputs = self.outputs.end(session.session_id, f"expired after {idle:.0f} s without use")
        self._forget_shared(session)
        await session.close()
        await self.environments.release(session.environment)
        await self._remove(outputs)
        logger.info("session %s expired after idling", session.session_id)
