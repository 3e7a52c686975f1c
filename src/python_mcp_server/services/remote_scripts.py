"""`RemoteScriptRunner`: `save_script` and `run_script` where kernels on a gateway are.

A script is saved into the kernels' `scripts/` folder through `RemoteWorkspace`, and run there by
the kernel that serves the workspace (`kernel_ext.script_runs`): with that kernel's interpreter,
the workspace as working directory, stdin closed, its output kept head and tail within the
same budget. The run does not hold that kernel: it starts, then the server asks how it is going,
at growing intervals, so file calls go on meanwhile. On timeout (or when the call is cancelled)
the script and the processes it started are killed. The result is built by the same code as a
local run's, so it reads the same.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from pathlib import Path
from typing import Any

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    InvalidArgumentError,
    NotAFileError,
    ScriptNotFoundError,
    ServerError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.services.remote_workspace import RemoteWorkspace
from python_mcp_server.workspace._output import BoundedBytes
from python_mcp_server.workspace.models import ScriptRun, WriteResult
from python_mcp_server.workspace.scripts import (
    LINGER_S,
    MAX_SOURCE_BYTES,
    SCRIPTS,
    ScriptOutcome,
    check_run,
    left_running_note,
    lingering_note,
    script_name,
    script_report,
    timed_out_note,
)

_FIRST_POLL_S = 0.02
_LAST_POLL_S = 0.5


class RemoteScriptRunner:
    """Saves and runs the scripts of the kernels' `scripts/` folder."""

    def __init__(self, config: ServerConfig, workspace: RemoteWorkspace) -> None:
        self.config = config
        self.workspace = workspace

    async def save(self, name: str, code: str) -> WriteResult:
        filename = script_name(name)
        return await self.workspace.write(f"{SCRIPTS}/{filename}", code, "text", overwrite=True)

    async def source(self, name: str) -> str:
        filename = script_name(name)
        path = f"{SCRIPTS}/{filename}"
        args = {"parts": await self.workspace.parts(path, need_name=True), "offset": 0}
        try:
            found = await self.workspace.call(
                "read", {**args, "want": MAX_SOURCE_BYTES}, path, retry=True, offset=0
            )
        except (WorkspaceFileNotFoundError, NotAFileError, InvalidArgumentError):
            raise ScriptNotFoundError(filename) from None
        return base64.b64decode(found["data"]).decode("utf-8", "replace")

    async def run(
        self,
        name: str,
        args: list[str] | None = None,
        timeout_s: float | None = None,
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> ScriptRun:
        """Run `scripts/<name>` where the kernels are, at most `timeout_s` seconds. `python` and
        `read_only` (an environment of its own) cannot reach there: the service refuses first."""
        if python is not None:
            raise InvalidArgumentError("Scripts run by kernels on a gateway use their interpreter.")
        filename, argv, timeout = check_run(self.config, name, args, timeout_s)
        path = f"{SCRIPTS}/{filename}"
        await self.workspace.parts(path, need_name=True)
        budget = self.config.max_output_chars
        started = time.monotonic()
        run_id = await self.workspace.call(
            "script_start",
            {"name": filename, "args": argv, "budget": budget},
            path,
            script=filename,
        )
        outcome = ScriptOutcome()
        try:
            found = await self._wait(run_id, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(ServerError):
                await self.workspace.call("script_kill", {"id": run_id}, None)
            raise
        if found is None:
            found = await self.workspace.call("script_kill", {"id": run_id}, None)
            outcome.timed_out = True
            outcome.notes.append(timed_out_note(timeout, int(found["killed"])))
        if found["lingering"]:
            outcome.notes.append(lingering_note(int(found["lingering"])))
        if found["left"]:
            outcome.notes.append(left_running_note(int(found["left"])))
        outcome.exit_code = found["exit_code"]
        outcome.killed = sum(int(found[key]) for key in ("killed", "lingering", "left"))
        sinks = (_kept(budget, found["out"]), _kept(budget, found["err"]))
        return script_report(filename, outcome, sinks, budget, time.monotonic() - started)

    async def _wait(self, run_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The run's result once it is over; None when `timeout_s` passed first."""
        pause = _FIRST_POLL_S
        deadline = time.monotonic() + timeout_s
        while True:  # a poll is never cut short: its answer may be the run's only result
            found: dict[str, Any] = await self.workspace.call(
                "script_poll", {"id": run_id, "linger_s": LINGER_S}, None
            )
            if found["done"]:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _LAST_POLL_S)


def _kept(budget: int, report: list[Any]) -> BoundedBytes:
    head, tail, total = report
    return BoundedBytes.kept(budget, base64.b64decode(head), base64.b64decode(tail), int(total))
