"""`KernelRun`: one submitted cell, whatever carries its messages (ZMQ sockets or a gateway's
websocket). The handle's readers feed it; the session awaits it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from python_mcp_server.errors import KernelDiedError
from python_mcp_server.kernels.backend import ExitInfo, OutputCallback, Reply
from python_mcp_server.kernels.messages import StatusOutput, parse_iopub

logger = logging.getLogger(__name__)


class KernelRun:
    """One submitted cell on a kernel handle: fed by the handle's readers, awaited by the session."""

    def __init__(self, msg_id: str, on_output: OutputCallback | None):
        self.msg_id = msg_id
        self._on_output = on_output
        self._reply: Reply | None = None
        self._idle = False
        self._done = asyncio.Event()
        self._begun = asyncio.Event()  # the kernel began the cell, finished it, or died
        self._settled = asyncio.Event()  # idle for this request, or the kernel died
        self._died: ExitInfo | None = None

    def _feed_iopub(self, msg: dict[str, Any]) -> None:
        if (msg.get("header", {}).get("msg_type") or msg.get("msg_type")) == "execute_input":
            self._begun.set()
        out = parse_iopub(msg)
        if out is None:
            return
        if isinstance(out, StatusOutput):
            if out.state == "idle":
                self._idle = True
                self._begun.set()
                self._settled.set()
                self._maybe_done()
            return
        if self._on_output is not None:
            try:
                self._on_output(out)
            except Exception:  # a sink bug must not kill the reader; it is logged
                logger.exception("output callback failed")

    def _feed_reply(self, reply: Reply) -> None:
        self._reply = reply
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._reply is not None and self._idle:
            self._done.set()

    def _kill(self, info: ExitInfo) -> None:
        self._died = info
        self._done.set()
        self._begun.set()
        self._settled.set()

    async def wait(self) -> Reply:
        await self._done.wait()
        if self._reply is not None and self._idle:
            return self._reply
        raise self._death()

    async def wait_begun(self) -> None:
        await self._begun.wait()
        if self._died is not None:
            raise self._death()

    async def wait_idle(self) -> None:
        await self._settled.wait()
        if not self._idle:
            raise self._death()

    def _death(self) -> KernelDiedError:
        info = self._died or ExitInfo(None)
        return KernelDiedError(f"The kernel {info.describe()} while running this cell.")
