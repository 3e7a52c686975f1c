"""The kernel that serves the workspace's files when kernels run on a gateway.

Kernels on a gateway see their own disk, not this server's, so the file tools, scripts, notebook
export and changed-file reports reach the workspace through a kernel there, which runs the
kernel-side `workspace_files` operations. File tools name no session, so that kernel is one of
the server's own: started on the first file call, started again on the next call after it died
(culled by the gateway, say), shut down with the server. It is no session: `list_sessions` does
not show it and `--max-sessions` does not count it. It must see the folder every session's
kernel sees (on one host, the gateway's working folder; on Kubernetes, a shared volume).

`evaluate_literal` is the one way to a value computed in a kernel here: a silent request whose
only work is a user expression, its `text/plain` repr read back as a Python literal.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import anyio

from python_mcp_server.errors import KernelCallError, KernelDiedError, WorkspaceError
from python_mcp_server.kernels import KernelBackend, KernelHandle, KernelSpec
from python_mcp_server.kernels.messages import strip_ansi
from python_mcp_server.services._kernel_ext import call_expression

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 120.0
"""Longest one file operation may take (a large folder deleted, a slow shared volume)."""
_KEY = "value"


async def evaluate_literal(handle: KernelHandle, expression: str, timeout_s: float) -> Any:
    """The value of `expression` in the kernel behind `handle`, which must be a literal (a
    string, a number, ...), by a silent, history-free request.

    Raises:
        TimeoutError: no answer within `timeout_s` (the request may still be running).
        KernelDiedError: the kernel ended first.
        KernelCallError: the expression raised.
    """
    run = await handle.submit(
        "", None, silent=True, store_history=False, user_expressions={_KEY: expression}
    )
    reply = await asyncio.wait_for(run.wait(), timeout_s)
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
        self.starts = 0  # kernels started so far

    @property
    def where(self) -> str:
        return str(getattr(self._handle, "where", "the kernel that serves the workspace"))

    async def _ready(self) -> KernelHandle:
        """The live kernel, started (again) when there is none."""
        async with self._lock:
            handle = self._handle
            if handle is not None and handle.exit_info() is None:
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
                value = await evaluate_literal(handle, _expression(op, args), CALL_TIMEOUT_S)
            except KernelDiedError as exc:
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
            return self._outcome(value)
        raise AssertionError("unreachable")

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


def _expression(op: str, args: dict[str, Any]) -> str:
    return call_expression("workspace", op, json.dumps(args, ensure_ascii=True))
