"""Carry a session's variables across a kernel restart (`restart_kernel(preserve_state=True)`).

The old kernel pickles each of the user's globals on its own with cloudpickle (stdlib pickle if
the kernel's interpreter lacks cloudpickle), skipping private names, modules and IPython's own
names; the new kernel unpickles them one by one (`kernel_ext.snapshot`). Anything that cannot make the trip is reported
with the reason. Each variable travels alone, so two names for one object arrive as two copies.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from python_mcp_server.errors import KernelBusyError, KernelDiedError
from python_mcp_server.kernels import KernelHandle
from python_mcp_server.services._kernel_ext import call_expression

MAX_STATE_BYTES = 1 << 30


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

    def _drop(self, items: dict[str, str]) -> None:
        self.dropped.extend(DroppedName(name, reason) for name, reason in items.items())

    async def save(self, handle: KernelHandle, timeout_s: float) -> None:
        """Pickle the old kernel's globals. On failure, `problem` says why and nothing is kept."""
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
        code = call_expression("load_state", str(self.folder))
        reason = await _run(handle, code, timeout_s)
        if reason is not None:
            self.problem = f"the saved variables could not be restored: {reason}"
            self._drop(dict.fromkeys(self.saved, f"restoring failed: {reason}"))
            return
        data = json.loads((self.folder / "loaded.json").read_text())
        self.restored = list(data["restored"])
        self._drop(data["dropped"])

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


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
