"""Sessions that server replicas share through one kernel gateway, with no database of their own.

The gateway's kernels are the shared state. When a server gives a kernel to a session it
publishes the session's description in the kernel (`kernel_ext/sessions.py`): its id, what it
was created with, and when a cell last ran there (moved by every server's cells). Any server
pointed at the same gateway lists the gateway's kernels and reads that back, so it can find,
list, use and delete a session another server created; the session's kernel handle there is
a second websocket on the same kernel.

What is guaranteed (docs/deploy.md says it for users):

- Cells never interleave: a kernel runs one execute request at a time, in the order requests
  reach it, whichever server sent them. Within one server a session's calls keep their FIFO.
- A server restarting a session's kernel (a timeout that did not stop, a crash) publishes the
  session in the new kernel; the other servers find it there when their handle on the old one
  ends, instead of starting a third.
- A kernel that is gone from the gateway with no successor (deleted by another server, or
  culled there after idling) ends the session everywhere, with a message saying so.
- A server expires a session only when no server has run a cell there for the idle timeout.
- A server that stops leaves its sessions' kernels on the gateway for the others (the
  gateway's culling removes them once unused); it shuts down only its warm pool.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from python_mcp_server.errors import (
    GatewayError,
    KernelDiedError,
    KernelError,
    KernelNotFoundError,
)
from python_mcp_server.kernels import KernelHandle, KernelLimits
from python_mcp_server.kernels.gateway import GatewayBackend, GatewayKernelHandle
from python_mcp_server.kernels.gateway_client import ListingRefusedError
from python_mcp_server.services._kernel_ext import call_expression
from python_mcp_server.services.kernel_start import KernelStarter, ReadyKernel
from python_mcp_server.services.session import KernelSource
from python_mcp_server.services.snapshot import StateTransfer

logger = logging.getLogger(__name__)

_ASK_TIMEOUT_S = 10.0
_DESCRIBE = call_expression("sessions.describe")


class SessionGoneError(KernelNotFoundError):
    """A shared session's kernel is gone from the gateway, with no successor."""

    def __init__(self, session_id: str, gateway: str) -> None:
        KernelError.__init__(
            self,
            f"Session {session_id!r} ended: its kernel is gone from the kernel gateway at "
            f"{gateway} (deleted from another server sharing the gateway, or culled there "
            "after idling), and its variables with it. Call create_session to start it again.",
        )
        self.session_id = session_id


@dataclass(frozen=True)
class SharedSession:
    """A session as its kernel on the gateway describes it."""

    session_id: str
    kernel_id: str
    description: str | None
    created: float
    last_used: float


def _published(meta: Any, kernel_id: str) -> SharedSession | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("session_id"), str):
        return None
    description = meta.get("description")
    return SharedSession(
        session_id=meta["session_id"],
        kernel_id=kernel_id,
        description=description if isinstance(description, str) else None,
        created=float(meta.get("created") or 0.0),
        last_used=float(meta.get("last_used") or 0.0),
    )


async def ask(handle: KernelHandle, expression: str) -> Any:
    """The value of a kernel-side expression that returns JSON text, parsed; None if it failed."""
    run = await handle.submit(
        "", None, silent=True, store_history=False, user_expressions={"v": expression}
    )
    with anyio.fail_after(_ASK_TIMEOUT_S):
        reply = await run.wait()
    found = reply.content.get("user_expressions", {}).get("v", {})
    text = found.get("data", {}).get("text/plain") if isinstance(found, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return None


class SessionDirectory:
    """Finds the sessions on the gateway, and publishes this server's there."""

    def __init__(self, backend: GatewayBackend, starter: KernelStarter) -> None:
        self._backend = backend
        self._starter = starter
        self._seen: dict[str, SharedSession] = {}  # kernel id -> the session it serves
        self._ended: set[str] = set()  # kernels of sessions ended here, maybe still listed

    @property
    def gateway(self) -> str:
        return self._backend.settings.shown

    async def publish(
        self, ready: ReadyKernel, session_id: str, description: str | None, created: float
    ) -> None:
        meta = {"session_id": session_id, "description": description, "created": created}
        found = await ask(ready.handle, call_expression("sessions.publish", json.dumps(meta)))
        kernel_id = _kernel_id(ready.handle)
        shared = _published(found, kernel_id) if kernel_id else None
        if isinstance(ready.handle, GatewayKernelHandle):
            ready.handle.published = True
        if shared is None:
            raise GatewayError(
                f"Session {session_id!r} could not be published in its kernel on the gateway at "
                f"{self.gateway}; other servers sharing the gateway would not find it."
            )
        self._seen[shared.kernel_id] = shared

    async def listing(self) -> list[SharedSession]:
        """Every session on the gateway (the oldest kernel of an id wins, should two servers
        have made one at the same moment)."""
        ids = [k for k in await self._backend.kernel_ids() if k not in self._ended]
        for gone in set(self._seen) - set(ids):
            del self._seen[gone]
        for kernel_id in ids:
            if kernel_id not in self._seen:
                shared = await self._read(kernel_id)
                if shared is not None:
                    self._seen[kernel_id] = shared
        best: dict[str, SharedSession] = {}
        for shared in sorted(self._seen.values(), key=lambda s: s.created, reverse=True):
            best[shared.session_id] = shared
        return sorted(best.values(), key=lambda s: s.session_id)

    async def find(self, session_id: str, besides: str | None = None) -> SharedSession | None:
        for shared in await self.listing():
            if shared.session_id == session_id and shared.kernel_id != besides:
                return shared
        return None

    def forget(self, ready: ReadyKernel) -> None:
        """The session of this kernel ended here (deleted, expired): never adopt it again,
        though the gateway may still list it for a moment."""
        kernel_id = _kernel_id(ready.handle)
        if kernel_id is not None:
            self._ended.add(kernel_id)
            self._seen.pop(kernel_id, None)

    async def last_used(self, ready: ReadyKernel) -> float | None:
        """When any server last ran a cell in this kernel, or None if it cannot tell."""
        try:
            shared = _published(await ask(ready.handle, _DESCRIBE), "")
        except (KernelDiedError, GatewayError, TimeoutError):
            return None
        return shared.last_used if shared is not None else None

    async def _read(self, kernel_id: str) -> SharedSession | None:
        """The session a kernel serves, asked over a websocket of our own (closed after). A
        kernel that serves none yet (a warm pool's, one starting) is asked again next time."""
        try:
            handle = await self._backend.attach(kernel_id, self._starter.spec())
        except GatewayError as exc:
            logger.info("kernel %s on the gateway could not be asked: %s", kernel_id, exc)
            return None
        try:
            return _published(await ask(handle, _DESCRIBE), kernel_id)
        except (KernelDiedError, TimeoutError):
            return None
        finally:
            await handle.detach()

    async def adopt(self, shared: SharedSession) -> ReadyKernel:
        """A kernel handle of our own on another server's session."""
        handle = await self._backend.attach(shared.kernel_id, self._starter.spec())
        return ReadyKernel(handle, tracks_files=True)

    def kernels(
        self,
        inner: KernelSource,
        shared: SharedSession,
        on_gone: Callable[[str], Awaitable[None]],
        adopted: ReadyKernel | None = None,
    ) -> SharedKernels:
        """The kernel source of session `shared` (`adopted`: its kernel, another server's)."""
        return SharedKernels(self, inner, shared, on_gone, adopted)


class SharedKernels:
    """A session's kernel source on a gateway: hands out a published kernel; after the first,
    looks for a successor another server made before starting one."""

    def __init__(
        self,
        directory: SessionDirectory,
        inner: KernelSource,
        shared: SharedSession,
        on_gone: Callable[[str], Awaitable[None]],
        adopted: ReadyKernel | None,
    ) -> None:
        self._directory = directory
        self._inner = inner  # the KernelSource the session would use on its own
        self._session_id = shared.session_id
        self._description = shared.description
        self._created = shared.created
        self._on_gone = on_gone
        self._current = adopted
        self._first = adopted

    async def take(self, limits: KernelLimits | None = None) -> ReadyKernel:
        if self._first is not None:
            ready, self._first = self._first, None
            return ready
        old = self._current
        if old is not None:
            besides = _kernel_id(old.handle)
            try:
                successor = await self._directory.find(self._session_id, besides)
            except ListingRefusedError:  # no other server's kernels can be known
                successor = None
            if successor is not None:
                self._current = await self._directory.adopt(successor)
                return self._current
            info = old.exit_info()
            if info is not None and info.removed:
                await self._on_gone(self._session_id)
                raise SessionGoneError(self._session_id, self._directory.gateway)
        ready = await self._inner.take(limits)
        try:
            await self._directory.publish(ready, self._session_id, self._description, self._created)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await ready.aclose()
            raise
        self._current = ready
        return ready

    def state_transfer(self) -> StateTransfer:
        return self._inner.state_transfer()


def _kernel_id(handle: KernelHandle) -> str | None:
    return handle.kernel_id if isinstance(handle, GatewayKernelHandle) else None
