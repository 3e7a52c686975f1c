"""`GatewayBackend`: kernels on a Jupyter gateway (Kernel Gateway, Enterprise Gateway, or a
jupyter_server), behind the same `KernelBackend` / `KernelHandle` seam as local kernels.

A handle owns one kernel on the gateway and one websocket to it. Its reader hands iopub to the
cell it belongs to (or keeps it as late output) and replies to their requests, exactly as the
local handle does with ZMQ. The kernel is reported dead when the gateway says so (an iopub
status `restarting` or `dead`: its nanny saw the process die), or when the websocket closes and
cannot be opened again because the gateway no longer has the kernel (culled, deleted) or cannot
be reached. A closed websocket whose kernel is still there is reopened with the same session
id, and the gateway replays what it buffered meanwhile.

A kernel there cannot read this server's disk: after its first answer the handle loads the
kernel-side package from source (`bootstrap`, a statement the services layer writes), before
the kernel is handed out, and again whenever the gateway restarted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from tornado.websocket import WebSocketClientConnection

from python_mcp_server.errors import (
    GatewayError,
    KernelBusyError,
    KernelDiedError,
    ListingRefusedError,
)
from python_mcp_server.kernels.backend import (
    ExitInfo,
    KernelLimits,
    KernelSpec,
    OutputCallback,
    Reply,
    epoch,
)
from python_mcp_server.kernels.gateway_client import (
    GatewayClient,
    GatewaySettings,
    Messages,
    decode,
    new_session,
)
from python_mcp_server.kernels.messages import StreamOutput, parse_iopub
from python_mcp_server.kernels.runs import KernelRun
from python_mcp_server.procs import ProcessJail
from python_mcp_server.procs.confine import Confinement
from python_mcp_server.text import HeadTail

logger = logging.getLogger(__name__)

_LATE_OUTPUT_CHARS = 10_000
_READY_RETRY_S = 1.0  # a first kernel_info may be lost while the kernel starts: ask again
_SHUTDOWN_TIMEOUT_S = 10.0
_WATCH_INTERVAL_S = 1.0  # how often the gateway is asked whether the kernel is still there
# how long a request waits for another server's cell in the same kernel to end before it is
# sent anyway (then its time limit, and the interrupt that may follow, apply as usual)
_FOREIGN_WAIT_S = 600.0
_PYTHON_EXPRESSION = "__import__('sys').executable"
MODULE_NAME = "__pmcp__"  # the kernel-side package's name in the kernel (see services/_kernel_ext)


class GatewayKernelHandle:
    """One kernel on the gateway, and its websocket."""

    def __init__(
        self, client: GatewayClient, spec: KernelSpec, bootstrap: str, env: dict[str, str]
    ) -> None:
        self._client = client
        self._spec = spec
        self._bootstrap = bootstrap
        self._env = env
        self.kernel_id: str | None = None
        self._messages = Messages(new_session(), client.settings.username)
        self._ws: WebSocketClientConnection | None = None
        self._runs: dict[str, KernelRun] = {}
        self._requests: dict[str, asyncio.Future[Reply]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._exit: ExitInfo | None = None
        self._ended = asyncio.Event()
        self._late = HeadTail(_LATE_OUTPUT_CHARS, "")
        self._foreign: set[str] = set()  # cells another server is running in this kernel
        self._foreign_done = asyncio.Event()
        self._foreign_done.set()
        self._closed = False
        self._created = False  # started by this handle (else attached: never deleted on failure)
        self.published = False  # it serves a session other servers can find (set by services)
        self._python = "python"

    @property
    def pid(self) -> int | None:
        return None  # a process on another machine

    @property
    def python(self) -> str:
        """The interpreter the kernel runs, as the kernel names it (a path on the gateway's side)."""
        return self._python

    @property
    def where(self) -> str:
        return f"kernel {self.kernel_id} on the gateway at {self._client.settings.shown}"

    def exit_info(self) -> ExitInfo | None:
        return self._exit

    async def wait_exit(self) -> ExitInfo:
        await self._ended.wait()
        assert self._exit is not None
        return self._exit

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- start

    async def start(self) -> None:
        try:
            with anyio.fail_after(self._spec.start_timeout_s):
                await self._start()
        except TimeoutError as exc:
            with anyio.CancelScope(shield=True):
                await self._close(delete=self._created)
            raise GatewayError(
                f"The kernel gateway at {self._client.settings.shown} did not have a kernel "
                f"ready within {self._spec.start_timeout_s:g} s (--kernel-start-timeout); it "
                "may be short of resources, or still pulling the kernel's image."
            ) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close(delete=self._created)
            raise

    async def _start(self) -> None:
        if self.kernel_id is None:
            self.kernel_id = await self._client.start_kernel(self._env, self._spec.start_timeout_s)
            self._created = True
        self._ws = await self._client.open_channels(self.kernel_id, self._messages.session)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read())]
        await self._wait_ready()
        await self._load_extension()

    async def _wait_ready(self) -> None:
        """Ask for kernel_info until it is answered (the gateway answers the start before the
        kernel is up, and a request sent too early can be dropped)."""
        while True:
            with contextlib.suppress(KernelBusyError):
                await self.request("kernel_info_request", {}, _READY_RETRY_S)
                return

    async def _load_extension(self) -> None:
        # a kernel another server attached first already has it: loading it twice would stack
        # the kernel-side hooks (audit hooks cannot be removed)
        code = f"if {MODULE_NAME!r} not in __import__('sys').modules: {self._bootstrap}"
        run = await self.submit(
            code,
            silent=True,
            store_history=False,
            user_expressions={"python": _PYTHON_EXPRESSION},
        )
        reply = await run.wait()
        if reply.status != "ok":
            raise GatewayError(
                f"The kernel-side extension did not load in {self.where}: "
                f"{reply.content.get('ename')}: {reply.content.get('evalue')}. The gateway's "
                "kernel must run Python 3.11 or newer with ipykernel."
            )
        found = reply.content.get("user_expressions", {}).get("python", {})
        text = found.get("data", {}).get("text/plain") if isinstance(found, dict) else None
        if isinstance(text, str):
            self._python = text.strip("'\"")

    # --------------------------------------------------------------- reader

    async def _read(self) -> None:
        while True:
            ws = self._ws
            frame = await ws.read_message() if ws is not None else None
            if frame is None:
                if self._closed or not await self._reconnect():
                    return
                continue
            try:
                message = decode(frame)
            except ValueError as exc:  # never let one message stop the reader
                logger.warning("%s: dropped a message: %s", self.where, exc)
                continue
            self._dispatch(message)

    @property
    def watched(self) -> bool:
        """Started, not closed, not known dead: the backend's watch looks for it."""
        return self.kernel_id is not None and not self._closed and self._exit is None

    def gone(self) -> None:
        """The gateway no longer has the kernel (the backend's watch found out)."""
        self._mark_dead(ExitInfo(None, reason=self._gone_reason(), removed=True))
        if self._ws is not None:
            self._ws.close()

    def _gone_reason(self) -> str:
        return (
            f"is gone from the gateway at {self._client.settings.shown} (shut down there: culled "
            "after being idle, or deleted from another server sharing it)"
        )

    def _dispatch(self, msg: dict[str, Any]) -> None:
        channel = msg.get("channel")
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if channel == "iopub":
            self._on_iopub(msg, parent)
        elif channel in ("shell", "control"):
            self._on_reply(msg, parent)

    def _on_iopub(self, msg: dict[str, Any], parent: str | None) -> None:
        content = msg.get("content") or {}
        if msg.get("msg_type") == "status":
            self._track_foreign(msg, content.get("execution_state"))
        if msg.get("msg_type") == "status" and content.get("execution_state") in (
            "restarting",
            "dead",
        ):
            # the gateway's nanny saw the kernel process end (it may start a new one: not ours)
            shown = self._client.settings.shown
            self._mark_dead(
                ExitInfo(None, reason=f"died (the gateway at {shown} reported it dead)")
            )
            return
        run = self._runs.get(parent) if parent else None
        if run is not None:
            run._feed_iopub(msg)
            if run._done.is_set():
                self._runs.pop(parent or "", None)
            return
        out = parse_iopub(msg)
        if isinstance(out, StreamOutput):  # printed after its cell ended
            self._late.append(out.text)

    def _track_foreign(self, msg: dict[str, Any], state: object) -> None:
        """Iopub goes to every connection: note the cells other servers run in this kernel."""
        parent = msg.get("parent_header") or {}
        if parent.get("msg_type") != "execute_request" or not parent.get("msg_id"):
            return
        if parent.get("session") == self._messages.session:
            return
        if state == "busy":
            self._foreign.add(parent["msg_id"])
            self._foreign_done.clear()
        elif state == "idle":
            self._foreign.discard(parent["msg_id"])
            if not self._foreign:
                self._foreign_done.set()

    async def _after_foreign_cells(self) -> None:
        """Wait (bounded) until no other server's cell runs here, so this request's time limit
        starts when the kernel can run it, and an interrupt it may need hits only its own."""
        if self._foreign_done.is_set():
            return
        with anyio.move_on_after(_FOREIGN_WAIT_S):
            await self._foreign_done.wait()

    def _on_reply(self, msg: dict[str, Any], parent: str | None) -> None:
        content = msg.get("content") or {}
        reply = Reply(
            status=str(content.get("status", "")),
            content=content,
            metadata=dict(msg.get("metadata") or {}),
            made_at=epoch((msg.get("header") or {}).get("date")),
        )
        run = self._runs.get(parent) if parent else None
        if run is not None:
            run._feed_reply(reply)
            if run._done.is_set():
                self._runs.pop(parent or "", None)
            return
        fut = self._requests.pop(parent, None) if parent else None
        if fut is not None and not fut.done():
            fut.set_result(reply)

    async def _reconnect(self) -> bool:
        """The websocket closed under us: open it again if the kernel is still there (the
        gateway replays what it buffered); otherwise the kernel is dead. Whether to go on."""
        assert self.kernel_id is not None
        try:
            state = await self._client.kernel_state(self.kernel_id)
            if state is not None and state != "dead":
                self._ws = await self._client.open_channels(self.kernel_id, self._messages.session)
                logger.info("%s: websocket reopened", self.where)
                return True
            reason, removed = self._gone_reason(), True
        except GatewayError:
            shown = self._client.settings.shown
            reason, removed = f"was lost: the gateway at {shown} cannot be reached", False
        self._mark_dead(ExitInfo(None, reason=reason, removed=removed))
        return False

    def take_late_output(self) -> str:
        late, self._late = self._late, HeadTail(_LATE_OUTPUT_CHARS, "")
        return late.render()

    def _mark_dead(self, info: ExitInfo) -> None:
        if self._exit is not None:
            return
        self._exit = info
        self._ended.set()
        if not self._closed:
            logger.warning("%s %s", self.where, info.describe())
        for run in self._runs.values():
            run._kill(info)
        self._runs.clear()
        for fut in self._requests.values():
            if not fut.done():
                fut.set_exception(KernelDiedError(f"The kernel {info.describe()}."))
        self._requests.clear()
        self._foreign_done.set()

    # ------------------------------------------------------------- requests

    def _check_alive(self) -> WebSocketClientConnection:
        if self._exit is not None:
            raise KernelDiedError(f"The kernel {self._exit.describe()}.")
        if self._ws is None or self._closed:
            raise RuntimeError("kernel handle is not started or already closed")
        return self._ws

    async def _send(self, text: str) -> None:
        ws = self._check_alive()
        try:
            await ws.write_message(text)
        except Exception as exc:  # tornado's WebSocketClosedError, or the stream's
            raise KernelDiedError(
                f"The connection to {self.where} closed while sending; the server reconnects "
                "if the kernel is still there: call again."
            ) from exc

    async def submit(
        self,
        code: str,
        on_output: OutputCallback | None = None,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> KernelRun:
        self._check_alive()
        await self._after_foreign_cells()
        self._check_alive()
        msg_id, text = self._messages.request(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": user_expressions or {},
                "allow_stdin": False,
                "stop_on_error": False,
            },
        )
        run = KernelRun(msg_id, on_output)
        self._runs[msg_id] = run
        try:
            await self._send(text)
        except BaseException:
            self._runs.pop(msg_id, None)
            raise
        return run

    async def request(
        self, msg_type: str, content: dict[str, Any], timeout_s: float, *, control: bool = False
    ) -> Reply:
        self._check_alive()
        msg_id, text = self._messages.request("control" if control else "shell", msg_type, content)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._requests[msg_id] = fut
        try:
            await self._send(text)
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError as exc:
            raise KernelBusyError(
                f"The kernel did not answer {msg_type} within {timeout_s:g} s; it is busy or hung. "
                "Call interrupt_kernel, or restart_kernel if that does not help."
            ) from exc
        finally:
            self._requests.pop(msg_id, None)

    async def interrupt(self) -> None:
        self._check_alive()
        assert self.kernel_id is not None
        if not await self._client.interrupt(self.kernel_id):
            self._mark_dead(ExitInfo(None, reason=self._gone_reason(), removed=True))
            raise KernelDiedError(f"The kernel {self._gone_reason()}.")

    # ---------------------------------------------------------------- close

    async def release(self) -> None:
        """The server stops: a kernel that serves a session stays for the other servers."""
        await self._close(delete=not self.published)

    async def detach(self) -> None:
        """Close the websocket but leave the kernel running on the gateway (its session outlives
        this server: another server sharing the gateway can use it)."""
        await self._close(delete=False)

    async def aclose(self) -> None:
        await self._close(delete=True)

    async def _close(self, delete: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws is not None:
            self._ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.kernel_id is not None and delete:
            with anyio.move_on_after(_SHUTDOWN_TIMEOUT_S, shield=True):
                try:
                    await self._client.delete_kernel(self.kernel_id)
                except GatewayError as exc:
                    logger.warning("%s was not shut down: %s", self.where, exc)
        reason = "was shut down" if delete else "was left to other servers"
        self._mark_dead(self._exit or ExitInfo(None, reason=reason))


class GatewayBackend:
    """Starts kernels on a Jupyter gateway. `bootstrap` is the statement that loads the
    kernel-side package in a new kernel."""

    remote = True

    def __init__(self, settings: GatewaySettings, bootstrap: str) -> None:
        self.settings = settings
        self._client = GatewayClient(settings)
        self._bootstrap = bootstrap
        self._handles: set[GatewayKernelHandle] = set()
        self._started: set[str] = set()  # kernels this server started, while the gateway lists them
        self._watcher: asyncio.Task[None] | None = None

    def jail_factory(self) -> Callable[[], ProcessJail] | None:
        return None  # kernels' processes are the gateway's to contain

    def confinement(
        self, python: str, workspace: Path, limits: KernelLimits, supervisor: Path
    ) -> Confinement | None:
        return None

    async def start(self, spec: KernelSpec) -> GatewayKernelHandle:
        env = {"KERNEL_USERNAME": self.settings.username, **_limits_env(spec.limits)}
        handle = GatewayKernelHandle(self._client, spec, self._bootstrap, env)
        self._watch_from_now()
        self._handles.add(handle)
        try:
            await handle.start()
        except BaseException:
            self._handles.discard(handle)
            raise
        if handle.kernel_id is not None:
            self._started.add(handle.kernel_id)
        return handle

    def started_here(self, kernel_id: str) -> bool:
        """Whether this server started the kernel (a pool's, a one-shot run's, a session's)."""
        return kernel_id in self._started

    async def attach(self, kernel_id: str, spec: KernelSpec) -> GatewayKernelHandle:
        """A handle on a kernel already on the gateway (started by another server)."""
        handle = GatewayKernelHandle(self._client, spec, self._bootstrap, {})
        handle.kernel_id = kernel_id
        self._watch_from_now()
        self._handles.add(handle)
        try:
            await handle.start()
        except BaseException:
            self._handles.discard(handle)
            raise
        return handle

    async def kernel_ids(self) -> list[str]:
        """The ids of the gateway's kernels (all of them: other servers' too)."""
        found = await self._client.list_kernels()
        ids = [str(k["id"]) for k in found if isinstance(k.get("id"), str)]
        self._started &= set(ids)  # ids of kernels gone from the gateway are not kept
        return ids

    def _watch_from_now(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """A gateway does not always close the websocket of a kernel it shut down (deleted by
        another server, culled): one listing per interval tells for all of this server's
        kernels (a gateway that does not list kernels is asked kernel by kernel)."""
        while True:
            await asyncio.sleep(_WATCH_INTERVAL_S)
            self._handles = {h for h in self._handles if not h.closed}
            live = [h for h in self._handles if h.watched]  # before asking: newer ones may miss
            if not live:
                continue
            try:
                listed = set(await self.kernel_ids())
            except ListingRefusedError:
                listed = {h.kernel_id or "" for h in live if await self._still_there(h.kernel_id)}
            except GatewayError:
                continue  # unreachable for now: each websocket's end decides
            for handle in live:
                if handle.kernel_id not in listed:
                    handle.gone()

    async def _still_there(self, kernel_id: str | None) -> bool:
        if kernel_id is None:
            return False
        try:
            return await self._client.kernel_state(kernel_id) is not None
        except GatewayError:
            return True

    async def aclose(self) -> None:
        """Shut down any kernel still open (the session manager closes its own first)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        open_handles = [h for h in self._handles if not h.closed]
        self._handles.clear()
        if open_handles:
            with anyio.move_on_after(_SHUTDOWN_TIMEOUT_S, shield=True):
                await asyncio.gather(*(h.aclose() for h in open_handles), return_exceptions=True)
        await self._client.aclose()


def _limits_env(limits: KernelLimits) -> dict[str, str]:
    """A session's limits as Enterprise Gateway's per-kernel resource variables (a gateway
    that does not place kernels in containers ignores them)."""
    env: dict[str, str] = {}
    if limits.memory_mb:
        env["KERNEL_MEMORY_LIMIT"] = f"{limits.memory_mb}M"
    if limits.cpus:
        env["KERNEL_CPUS_LIMIT"] = f"{limits.cpus:g}"
    return env
