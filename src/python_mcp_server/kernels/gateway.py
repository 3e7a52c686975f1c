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

from python_mcp_server.errors import GatewayError, KernelBusyError, KernelDiedError
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
_PYTHON_EXPRESSION = "__import__('sys').executable"


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
        self._reader: asyncio.Task[None] | None = None
        self._exit: ExitInfo | None = None
        self._ended = asyncio.Event()
        self._late = HeadTail(_LATE_OUTPUT_CHARS, "")
        self._closed = False
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
                await self.aclose()
            raise GatewayError(
                f"The kernel gateway at {self._client.settings.shown} did not have a kernel "
                f"ready within {self._spec.start_timeout_s:g} s (--kernel-start-timeout); it "
                "may be short of resources, or still pulling the kernel's image."
            ) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def _start(self) -> None:
        self.kernel_id = await self._client.start_kernel(self._env)
        self._ws = await self._client.open_channels(self.kernel_id, self._messages.session)
        self._reader = asyncio.get_running_loop().create_task(self._read())
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
        run = await self.submit(
            self._bootstrap,
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

    def _dispatch(self, msg: dict[str, Any]) -> None:
        channel = msg.get("channel")
        parent = (msg.get("parent_header") or {}).get("msg_id")
        if channel == "iopub":
            self._on_iopub(msg, parent)
        elif channel in ("shell", "control"):
            self._on_reply(msg, parent)

    def _on_iopub(self, msg: dict[str, Any], parent: str | None) -> None:
        content = msg.get("content") or {}
        if msg.get("msg_type") == "status" and content.get("execution_state") in (
            "restarting",
            "dead",
        ):
            # the gateway's nanny saw the kernel process end (it may start a new one: not ours)
            self._mark_dead(
                ExitInfo(None, reason=f"died on the gateway ({self.where} reported it)")
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
            reason = (
                f"is gone: {self.where} was shut down there (culled after being idle, or deleted)"
            )
        except GatewayError as exc:
            reason = f"was lost with the connection to the gateway: {exc}"
        self._mark_dead(ExitInfo(None, reason=reason))
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
        await self._client.interrupt(self.kernel_id)

    # ---------------------------------------------------------------- close

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws is not None:
            self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.kernel_id is not None:
            with anyio.move_on_after(_SHUTDOWN_TIMEOUT_S, shield=True):
                try:
                    await self._client.delete_kernel(self.kernel_id)
                except GatewayError as exc:
                    logger.warning("%s was not shut down: %s", self.where, exc)
        self._mark_dead(self._exit or ExitInfo(None, reason="was shut down"))


class GatewayBackend:
    """Starts kernels on a Jupyter gateway. `bootstrap` is the statement that loads the
    kernel-side package in a new kernel."""

    remote = True

    def __init__(self, settings: GatewaySettings, bootstrap: str) -> None:
        self.settings = settings
        self._client = GatewayClient(settings)
        self._bootstrap = bootstrap
        self._handles: set[GatewayKernelHandle] = set()

    def jail_factory(self) -> Callable[[], ProcessJail] | None:
        return None  # kernels' processes are the gateway's to contain

    def confinement(
        self, python: str, workspace: Path, limits: KernelLimits, supervisor: Path
    ) -> Confinement | None:
        return None

    async def start(self, spec: KernelSpec) -> GatewayKernelHandle:
        env = {"KERNEL_USERNAME": self.settings.username, **_limits_env(spec.limits)}
        handle = GatewayKernelHandle(self._client, spec, self._bootstrap, env)
        self._handles.add(handle)
        try:
            await handle.start()
        except BaseException:
            self._handles.discard(handle)
            raise
        return handle

    async def aclose(self) -> None:
        """Shut down any kernel still open (the session manager closes its own first)."""
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
