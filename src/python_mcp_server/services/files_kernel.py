"""The kernel that serves the workspace's files when kernels run on a gateway.

Kernels on a gateway see their own disk, not this server's, so the file tools, scripts, notebook
export and changed-file reports reach the workspace through a kernel there, which runs the
kernel-side `workspace_files` operations. File tools name no session, so that kernel is one of
the server's own: started on the first file call, started again on the next call after it died
(culled by the gateway, say), shut down with the server. It is no session: `list_sessions` does
not show it and `--max-sessions` does not count it. It must see the folder every session's
kernel sees (on one host, the gateway's working folder; on Kubernetes, a shared volume).

A kernel the gateway shut down (culled when idle, deleted) may go unnoticed by its handle, whose
websocket can stay open; so the kernel is asked on the control channel whether it still answers
before it is used after a quiet spell, and while a call waits long for its reply. One that does
not answer is replaced.

`evaluate_literal` is the one way to a value computed in a kernel here: a silent request whose
only work is a user expression, its `text/plain` repr read back as a Python literal.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import anyio

from python_mcp_server.errors import (
    KernelBusyError,
    KernelCallError,
    KernelDiedError,
    WorkspaceError,
)
from python_mcp_server.kernels import KernelBackend, KernelHandle, KernelSpec
from python_mcp_server.kernels.backend import ExecutionRun, Reply
from python_mcp_server.kernels.messages import strip_ansi
from python_mcp_server.services._kernel_ext import call_expression

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 120.0
"""Longest one file operation may take (a large folder deleted, a slow shared volume)."""
QUIET_S = 30.0
"""After this long unused, the kernel is asked whether it still answers before it is used."""
_FIRST_CHECK_S = 2.0  # a call still waiting this long checks that the kernel answers...
_CHECK_EVERY_S = 10.0  # ... and again at this interval
_ANSWER_S = 5.0  # how long a kernel_info on the control channel may take
_KEY = "value"


async def evaluate_literal(handle: KernelHandle, expression: str, timeout_s: float) -> Any:
    """The value of `expression` in the kernel behind `handle`, which must be a literal (a
    string, a number, ...), by a silent, history-free request.

    Raises:
        TimeoutError: no answer within `timeout_s` (the request may still be running).
        KernelDiedError: the kernel ended first.
        KernelCallError: the expression raised.
    """
    run = await _submit(handle, expression)
    return literal_of(await asyncio.wait_for(run.wait(), timeout_s))


async def _submit(handle: KernelHandle, expression: str) -> ExecutionRun:
    return await handle.submit(
        "", None, silent=True, store_history=False, user_expressions={_KEY: expression}
    )


def literal_of(reply: Reply) -> Any:
    """The value of the user expression of a request `_submit` sent; KernelCallError when it
    raised or cannot be read."""
    value = reply.content.get("user_expressions", {}).get(_KEY, {})
    if reply.status != "ok" or value.get("status") != "ok":
        problem = value if value.get("status") == "error" else reply.content
        trace = strip_ansi("".join(problem.get("traceback", [])))[-2000:]
        logger.warning("a call in a kernel failed: %s", trace)
        raise KernelCallError(f"{problem.get('ename', 'error')}: {problem.get('evalue', '')}")
    try:
        return ast.literal_eval(value.get("data", {}).get("text/plain", ""))
    except (ValueError, SyntaxError) as exc:
        raise KernelCallError(f"the kernel's answer was not readable ({exc})") from None


class FilesKernel:
    """The server's own kernel on the gateway for workspace files (see the module docstring)."""

    def __init__(self, backend: KernelBackend, spec: Callable[[], KernelSpec]) -> None:
        self._backend = backend
        self._spec = spec
        self._handle: KernelHandle | None = None
        self._root: PurePosixPath | None = None
        self._lock = asyncio.Lock()
        self._used_at = 0.0  # when a call last had its answer
        self.starts = 0  # kernels started so far

    @property
    def where(self) -> str:
        return str(getattr(self._handle, "where", "the kernel that serves the workspace"))

    async def _ready(self) -> KernelHandle:
        """The live kernel, started (again) when there is none."""
        async with self._lock:
            handle = self._handle
            if handle is not None and handle.exit_info() is None:
                quiet = time.monotonic() - self._used_at > QUIET_S
                if not quiet or await _answers(handle):
                    return handle
            self._handle = None
            if handle is not None:
                logger.info("the workspace kernel ended; starting another")
                with anyio.CancelScope(shield=True):
                    await handle.aclose()
            handle = await self._backend.start(self._spec())
            try:
                hello = self._outcome(
                    await evaluate_literal(handle, _expression("hello", {}), CALL_TIMEOUT_S)
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await handle.aclose()
                raise
            self._root = PurePosixPath(hello["ok"]["root"])
            self._handle = handle
            self._used_at = time.monotonic()
            self.starts += 1
            logger.info("workspace files are served by %s, at %s", self.where, self._root)
            return handle

    async def root(self) -> PurePosixPath:
        """The workspace's real path where the kernels are."""
        await self._ready()
        assert self._root is not None
        return self._root

    async def call(self, op: str, args: dict[str, Any], *, retry: bool = False) -> dict[str, Any]:
        """Run the kernel-side operation `op`: `{"ok": value}` or `{"error": kind, ...}`. With
        `retry` (an operation that changes nothing) a kernel that died under it is replaced and
        the operation sent once more."""
        for attempt in (1, 2):
            handle = await self._ready()
            try:
                value = await self._evaluate(handle, _expression(op, args))
            except KernelDiedError as exc:
                await self._discard(handle)
                if retry and attempt == 1:
                    continue
                raise WorkspaceError(
                    f"The kernel that serves the workspace on the gateway ended during {op!r} "
                    f"({exc}); the next call starts another. Call again (list_files first "
                    "after a write, to see whether it happened)."
                ) from exc
            except TimeoutError:
                await self._discard(handle)
                raise WorkspaceError(
                    f"The workspace on the gateway did not finish {op!r} within "
                    f"{CALL_TIMEOUT_S:g} s; its kernel was stopped and the next call starts "
                    "another. Work on smaller parts (a deeper folder, a smaller file)."
                ) from None
            except KernelCallError as exc:
                raise WorkspaceError(
                    f"The workspace on the gateway could not do {op!r}: {exc}."
                ) from exc
            self._used_at = time.monotonic()
            return self._outcome(value)
        raise AssertionError("unreachable")

    @staticmethod
    async def _evaluate(handle: KernelHandle, expression: str) -> Any:
        """`evaluate_literal`, checking while it waits that the kernel still answers."""
        run = await _submit(handle, expression)
        waited, step = 0.0, _FIRST_CHECK_S
        while True:
            try:
                return literal_of(await asyncio.wait_for(run.wait(), step))
            except TimeoutError:
                waited += step
                if waited >= CALL_TIMEOUT_S:
                    raise
                if not await _answers(handle):
                    raise KernelDiedError(
                        "it no longer answers; the gateway may have shut it down"
                    ) from None
                step = min(_CHECK_EVERY_S, CALL_TIMEOUT_S - waited)

    @staticmethod
    def _outcome(value: object) -> dict[str, Any]:
        try:
            outcome = json.loads(value) if isinstance(value, str) else None
        except ValueError:
            outcome = None
        if not isinstance(outcome, dict):
            raise WorkspaceError("The workspace on the gateway gave an answer that is not JSON.")
        return outcome

    async def _discard(self, handle: KernelHandle) -> None:
        async with self._lock:
            if self._handle is handle:
                self._handle = None
        with anyio.CancelScope(shield=True):
            await handle.aclose()

    async def aclose(self) -> None:
        """Shut the kernel down (with the server)."""
        async with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            with anyio.CancelScope(shield=True):
                await handle.aclose()


async def _answers(handle: KernelHandle) -> bool:
    """Whether the kernel answers a kernel_info on its control channel (busy or not)."""
    try:
        await handle.request("kernel_info_request", {}, _ANSWER_S, control=True)
    except (KernelBusyError, KernelDiedError):
        return False
    return True


def _expression(op: str, args: dict[str, Any]) -> str:
    return call_expression("workspace", op, json.dumps(args, ensure_ascii=True))
