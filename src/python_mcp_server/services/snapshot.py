"""Carry a session's variables across a kernel restart (`restart_kernel(preserve_state=True)`).

The old kernel pickles each of the user's globals on its own with cloudpickle (stdlib pickle if
the kernel's interpreter lacks cloudpickle), skipping private names, modules and IPython's own
names; the new kernel unpickles them one by one (`kernel_ext.snapshot`). Anything that cannot make the trip is reported
with the reason. Each variable travels alone, so two names for one object arrive as two copies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_mcp_server.errors import KernelBusyError, KernelCallError, KernelDiedError
from python_mcp_server.kernels import KernelHandle
from python_mcp_server.services._kernel_ext import call_expression
from python_mcp_server.services.files_kernel import evaluate_literal

MAX_STATE_BYTES = 1 << 30
PIECE_BYTES = 4 * 1024 * 1024
"""Bytes of pickled state in one message, through the server (base64 adds a third)."""
_STATE_FILE = "state.pkl"


@dataclass(frozen=True)
class DroppedName:
    name: str
    reason: str


@dataclass
class StateTransfer:
    """One preserve-state restart: the folder the state passes through, and what happened."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mcp-state-")))

    @classmethod
    def within(cls, base: Path, owner: tuple[int, int] | None = None) -> StateTransfer:
        """A transfer through a fresh folder under `base`, which both kernels must see (in a
        sandbox: the workspace, their only shared folder), handed to `owner` when given."""
        folder = Path(tempfile.mkdtemp(prefix=".restart-state-", dir=base))
        if owner is not None:
            os.chown(folder, *owner)
        return cls(folder=folder)

    saved: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    dropped: list[DroppedName] = field(default_factory=list)
    problem: str | None = None
    through_server: bool = False  # the kernels see no folder of this server's: pieces instead

    def _drop(self, items: dict[str, str]) -> None:
        self.dropped.extend(DroppedName(name, reason) for name, reason in items.items())

    async def save(self, handle: KernelHandle, timeout_s: float) -> None:
        """Pickle the old kernel's globals. On failure, `problem` says why and nothing is kept."""
        if self.through_server:
            reason = await _failure(self._fetch(handle, timeout_s), timeout_s)
            if reason is not None:
                self.saved = []
                self.problem = f"the variables could not be saved: {reason}"
            return
        code = call_expression("save_state", str(self.folder), MAX_STATE_BYTES)
        reason = await _run(handle, code, timeout_s)
        if reason is not None:
            self.problem = f"the variables could not be saved: {reason}"
            return
        data = json.loads((self.folder / "saved.json").read_text())
        self.saved = list(data["saved"])
        self._drop(data["dropped"])

    async def load(self, handle: KernelHandle, timeout_s: float) -> None:
        """Unpickle the saved globals into the new kernel."""
        if not self.saved:
            return
        if self.through_server:
            reason = await _failure(self._send(handle, timeout_s), timeout_s)
        else:
            code = call_expression("load_state", str(self.folder))
            reason = await _run(handle, code, timeout_s)
        if reason is not None:
            self.problem = f"the saved variables could not be restored: {reason}"
            self._drop(dict.fromkeys(self.saved, f"restoring failed: {reason}"))
            return
        if not self.through_server:
            data = json.loads((self.folder / "loaded.json").read_text())
            self.restored = list(data["restored"])
            self._drop(data["dropped"])

    async def _fetch(self, handle: KernelHandle, timeout_s: float) -> None:
        """The old kernel's pickled globals, in pieces, into this server's folder."""
        data = json.loads(
            await evaluate_literal(
                handle, call_expression("dump_state", MAX_STATE_BYTES), timeout_s
            )
        )
        size = int(data["size"])
        with (self.folder / _STATE_FILE).open("wb") as f:
            for offset in range(0, size, PIECE_BYTES):
                code = call_expression("state_piece", offset, PIECE_BYTES)
                f.write(base64.b64decode(await evaluate_literal(handle, code, timeout_s)))
        self.saved = list(data["saved"])
        self._drop(data["dropped"])

    async def _send(self, handle: KernelHandle, timeout_s: float) -> None:
        """The pickled globals, in pieces, into the new kernel, and unpickled there."""
        with (self.folder / _STATE_FILE).open("rb") as f:
            while piece := f.read(PIECE_BYTES):
                code = call_expression("state_add", base64.b64encode(piece).decode("ascii"))
                await evaluate_literal(handle, code, timeout_s)
        data = json.loads(
            await evaluate_literal(handle, call_expression("restore_state"), timeout_s)
        )
        self.restored = list(data["restored"])
        self._drop(data["dropped"])

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


async def _failure(step: Coroutine[Any, Any, None], timeout_s: float) -> str | None:
    """Await `step`, whose requests each wait at most `timeout_s`; None when it worked, else
    why it did not."""
    try:
        await step
    except TimeoutError:
        return f"the kernel did not finish within {timeout_s:g} s"
    except (KernelDiedError, KernelBusyError, KernelCallError) as exc:
        return str(exc)
    except (OSError, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def _run(handle: KernelHandle, code: str, timeout_s: float) -> str | None:
    """Run a silent helper cell; None on success, else why it failed."""
    try:
        run = await handle.submit(code, silent=True, store_history=False)
        reply = await asyncio.wait_for(run.wait(), timeout_s)
    except TimeoutError:
        return f"the kernel did not finish within {timeout_s:g} s"
    except (KernelDiedError, KernelBusyError) as exc:
        return str(exc)
    if reply.status != "ok":
        return f"{reply.content.get('ename', 'error')}: {reply.content.get('evalue', '')}"
    return None
