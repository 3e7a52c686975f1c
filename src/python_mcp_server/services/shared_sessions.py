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
import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from python_mcp_server.errors import (
    GatewayError,
    KernelDiedError,
    KernelError,
    KernelNotFoundError,
    ListingRefusedError,
)
from python_mcp_server.kernels import KernelHandle, KernelLimits
from python_mcp_server.services._kernel_ext import call_expression
from python_mcp_server.services.kernel_start import KernelStarter, ReadyKernel
from python_mcp_server.services.session import KernelSource
from python_mcp_server.services.snapshot import StateTransfer

if TYPE_CHECKING:  # imported when a gateway is used: its client (httpx, websockets) is not light
    from python_mcp_server.kernels.gateway import GatewayBackend, GatewayKernelHandle

logger = logging.getLogger(__name__)

_ASK_TIMEOUT_S = 10.0
_READ_ATTACH_S = 5.0  # to open a websocket on a kernel that may serve a session
_MAX_ANSWER_CHARS = 64 * 1024  # a published session is a few hundred characters
_UNPUBLISHED_RETRY_S = 10.0  # a kernel serving no session (a warm pool's) is asked again after
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


def _signature(key: bytes, kernel_id: str, session_id: str, description: Any, created: Any) -> str:
    """What a server signs when it publishes a session in a kernel: the kernel's own id is in
    it, so a record copied into another kernel does not verify there."""
    blob = json.dumps([kernel_id, session_id, description, created], sort_keys=True).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _published(meta: Any, kernel_id: str, key: bytes) -> SharedSession | None:
    """The session a kernel says it serves, if a server sharing the gateway's token published
    it there: code in a kernel can rewrite what it says, but cannot sign it."""
    if not isinstance(meta, dict) or not isinstance(meta.get("session_id"), str):
        return None
    session_id: str = meta["session_id"]
    description: Any = meta.get("description")
    created: Any = meta.get("created")
    expected = _signature(key, kernel_id, session_id, description, created)
    if not hmac.compare_digest(str(meta.get("signature", "")), expected):
        logger.warning(
            "kernel %s on the gateway claims session %r without a valid signature: ignored",
            kernel_id,
            session_id,
        )
        return None
    try:
        stamps = float(created), float(meta.get("last_used") or 0.0)
    except (TypeError, ValueError):
        return None
    return SharedSession(
        session_id=session_id,
        kernel_id=kernel_id,
        description=description if isinstance(description, str) else None,
        created=stamps[0],
        last_used=min(stamps[1], time.time()),
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
    if not isinstance(text, str) or len(text) > _MAX_ANSWER_CHARS:
        return None
    try:
        return json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return None


class SessionDirectory:
    """Finds the sessions on the gateway, and publishes this server's there."""

    def __init__(
        self, backend: GatewayBackend, starter: KernelStarter, key: bytes, successor_wait_s: float
    ) -> None:
        self._backend = backend
        self._starter = starter
        self.successor_wait_s = successor_wait_s  # how long a crashed kernel's publisher may take
        self._key = key  # signs what this server publishes; the replicas share it
        self._seen: dict[str, SharedSession] = {}  # kernel id -> the session it serves
        self._unpublished: dict[str, float] = {}  # kernel id -> when it served none
        self._ended: set[str] = set()  # kernels of sessions ended here, maybe still listed

    @property
    def gateway(self) -> str:
        return self._backend.settings.shown

    async def publish(
        self, ready: ReadyKernel, session_id: str, description: str | None, created: float
    ) -> None:
        kernel_id = _kernel_id(ready.handle) or ""
        meta = {
            "session_id": session_id,
            "description": description,
            "created": created,
            "signature": _signature(self._key, kernel_id, session_id, description, created),
        }
        found = await ask(ready.handle, call_expression("sessions.publish", json.dumps(meta)))
        shared = _published(found, kernel_id, self._key) if kernel_id else None
        on_gateway = _gateway_handle(ready.handle)
        if on_gateway is not None:
            on_gateway.published = True
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
        now = time.monotonic()
        unknown = [  # this server's own kernels serve a session only once it published it
            k
            for k in ids
            if k not in self._seen
            and not self._backend.started_here(k)
            and now - self._unpublished.get(k, -1e9) > _UNPUBLISHED_RETRY_S
        ]
        read = await asyncio.gather(*(self._read(k) for k in unknown))
        for kernel_id, shared in zip(unknown, read, strict=True):
            if shared is not None:
                self._seen[kernel_id] = shared
                self._unpublished.pop(kernel_id, None)
            else:
                self._unpublished[kernel_id] = now
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
            kernel_id = _kernel_id(ready.handle) or ""
            shared = _published(await ask(ready.handle, _DESCRIBE), kernel_id, self._key)
        except (KernelDiedError, GatewayError, TimeoutError):
            return None
        return shared.last_used if shared is not None else None

    async def _read(self, kernel_id: str) -> SharedSession | None:
        """The session a kernel serves, asked over a websocket of our own (closed after). A
        kernel that serves none yet (a warm pool's, one starting) is asked again next time."""
        try:  # a kernel being shut down (another server's one-shot run) may not answer at all
            with anyio.fail_after(_READ_ATTACH_S):
                handle = await self._backend.attach(kernel_id, self._starter.spec())
        except (GatewayError, KernelDiedError, TimeoutError) as exc:
            logger.info("kernel %s on the gateway could not be asked: %s", kernel_id, exc)
            return None
        try:
            meta = await ask(handle, _DESCRIBE)
        except (KernelDiedError, TimeoutError):
            return None
        finally:
            await handle.detach()
        if isinstance(meta, dict) and "role" in meta and "session_id" not in meta:
            self._ended.add(kernel_id)  # a server's workspace kernel: never a session
            return None
        return _published(meta, kernel_id, self._key)

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
    """A session's kernel source on a gateway. Its first kernel is published (or adopted from
    another server); a restart publishes the new kernel before the old one is shut down, so the
    other servers find the successor as soon as the old kernel is gone. A kernel that died under
    another server's session is replaced by that server: this one waits for the successor."""

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
        self._first = adopted
        self._mine: set[str] = set()  # kernels this server published for the session

    async def take(self, limits: KernelLimits | None = None) -> ReadyKernel:
        if self._first is not None:
            ready, self._first = self._first, None
            return ready
        return await self._publish_new(limits)

    async def replace(self, old: ReadyKernel, limits: KernelLimits | None = None) -> ReadyKernel:
        successor = await self._successor(old)
        if successor is not None:
            await _let_go(old)
            return await self._directory.adopt(successor)
        info = old.exit_info()
        if info is not None and info.removed:  # deleted or culled, and nobody made another
            await _let_go(old)
            await self._on_gone(self._session_id)
            raise SessionGoneError(self._session_id, self._directory.gateway)
        try:
            return await self._publish_new(limits)
        finally:
            with anyio.CancelScope(shield=True):
                await old.aclose()

    async def _successor(self, old: ReadyKernel) -> SharedSession | None:
        """A kernel another server published for the session in place of `old`. When `old` died
        under a session this server did not publish, its publisher replaces it: wait for that
        (bounded by the kernel start timeout) rather than make a second successor."""
        besides = _kernel_id(old.handle)
        info = old.exit_info()
        wait = info is not None and not info.removed and besides not in self._mine
        deadline = time.monotonic() + (self._directory.successor_wait_s if wait else 0.0)
        pause = 0.2
        while True:
            try:
                found = await self._directory.find(self._session_id, besides)
            except ListingRefusedError:  # no other server's kernels can be known
                return None
            if found is not None or time.monotonic() >= deadline:
                return found
            await anyio.sleep(pause)  # the other server is starting the successor
            pause = min(pause * 2, 1.0)

    async def _publish_new(self, limits: KernelLimits | None) -> ReadyKernel:
        ready = await self._inner.take(limits)
        try:
            await self._directory.publish(ready, self._session_id, self._description, self._created)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await ready.aclose()
            raise
        kernel_id = _kernel_id(ready.handle)
        if kernel_id is not None:
            self._mine.add(kernel_id)
        return ready

    def state_transfer(self) -> StateTransfer:
        return self._inner.state_transfer()


async def _let_go(old: ReadyKernel) -> None:
    """Close this server's handle on a kernel without shutting the kernel down (it is gone, or
    another server's restart replaced it)."""
    on_gateway = _gateway_handle(old.handle)
    if on_gateway is not None:
        await on_gateway.detach()
    else:
        await old.handle.aclose()


def _kernel_id(handle: KernelHandle) -> str | None:
    on_gateway = _gateway_handle(handle)
    return on_gateway.kernel_id if on_gateway is not None else None


def _gateway_handle(handle: KernelHandle) -> GatewayKernelHandle | None:
    """`handle` if it is a gateway kernel's (this module serves only servers with a gateway)."""
    from python_mcp_server.kernels.gateway import GatewayKernelHandle

    return handle if isinstance(handle, GatewayKernelHandle) else None
