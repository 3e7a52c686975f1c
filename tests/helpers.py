"""Small helpers the tool tests share: call a tool, read its error, wait for a file, run a cell
in the background, find a kernel's processes on the host (sandboxed or not)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from fastmcp import Client
from mcp.types import TextContent

import python_mcp_server

# A cell that writes `started`, sleeps for a minute, and writes `interrupted` if interrupted.
SLEEP_UNTIL_INTERRUPTED = (  # `started` inside the try: an interrupt sent once it exists lands there
    "import time\n"
    "try:\n"
    "    open('started', 'w').close()\n"
    "    time.sleep(60)\n"
    "except KeyboardInterrupt:\n"
    "    open('interrupted', 'w').close()\n"
    "    raise"
)

# A cell that writes `started`, then loops forever, swallowing every KeyboardInterrupt.
# `started` is written inside the `try`, so an interrupt sent once it exists is always caught.
IGNORES_INTERRUPTS = (
    "import os, time\n"
    "while True:\n"
    "    try:\n"
    "        os.path.exists('started') or open('started', 'w').close()\n"
    "        time.sleep(1)\n"
    "    except KeyboardInterrupt:\n"
    "        pass"
)


async def call(client: Client[Any], tool: str, **args: Any) -> dict[str, Any]:
    """A successful call's structured content."""
    res = await client.call_tool(tool, args)
    assert res.structured_content is not None
    return res.structured_content


async def error(client: Client[Any], tool: str, **args: Any) -> str:
    """A failing call's message."""
    res = await client.call_tool(tool, args, raise_on_error=False)
    assert res.is_error
    item = res.content[0]
    assert isinstance(item, TextContent)
    return item.text


async def kernel_pid(client: Client[Any], session_id: str = "default") -> int:
    """The host pid of a session's kernel interpreter, as `list_sessions` reports it. Inside a
    sandbox `os.getpid()` is a pid of the kernel's own namespace: never signal that one."""
    sessions = (await call(client, "list_sessions"))["sessions"]
    pids = [s["kernel_pid"] for s in sessions if s["session_id"] == session_id]
    assert pids, f"no session {session_id!r} in {sessions}"
    assert isinstance(pids[0], int), f"session {session_id!r} has no kernel: {sessions}"
    return pids[0]


async def wait_for_file(path: Path, timeout_s: float = 30) -> None:
    """Poll for a file the kernel writes, bounded."""
    with anyio.fail_after(timeout_s):
        while not path.exists():
            await anyio.sleep(0.02)


def start_cell(tg: TaskGroup, client: Client[Any], args: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `run_python_code(**args)` in `tg`; the list gets its structured content when it ends."""
    results: list[dict[str, Any]] = []

    async def run() -> None:
        results.append(await call(client, "run_python_code", **args))

    tg.start_soon(run)
    return results


async def cancel_when(client: Client[Any], args: dict[str, Any], marker: Path) -> None:
    """Call `run_python_code(**args)`, wait until the cell creates `marker`, then cancel the call."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.call_tool, "run_python_code", args)
        await wait_for_file(marker)
        tg.cancel_scope.cancel()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _live(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


def argv_of(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode("utf-8", "replace").split("\0")[:-1]


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid`, whichever of its threads started them, nearest first."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            by_parent.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    level = [pid]
    while level:
        level = [child for parent in level for child in sorted(by_parent.get(parent, []))]
        found.extend(level)
    return [p for p in found if _live(p)]


def kernel_processes(root: int | None = None) -> list[int]:
    """Live processes below `root` (this process by default) that run a kernel or launch one
    (in a sandbox, bubblewrap's argv names the kernel too)."""
    below = descendants(os.getpid() if root is None else root)
    return [p for p in below if any(_starts_kernel(arg) for arg in argv_of(p))]


def kernel_interpreters(root: int | None = None) -> list[int]:
    """Live kernel interpreters below `root` (this process by default): one per kernel."""
    found = []
    for pid in kernel_processes(root):
        argv = argv_of(pid)
        if argv[1:3] == ["-m", "ipykernel_launcher"] or argv[1:2] == [str(KERNEL_MAIN)]:
            found.append(pid)
    return found


# the kernels' main program, run by path
KERNEL_MAIN = Path(python_mcp_server.__file__).resolve().parent / "kernel_ext" / "kernel_main.py"


def _starts_kernel(arg: str) -> bool:
    return arg in ("ipykernel_launcher", str(KERNEL_MAIN))


def processes_naming(text: str) -> list[int]:
    """Live processes with `text` in an argument: found on the host whatever pid namespace they
    run in (a sandboxed process prints pids the host does not know)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            pid = int(entry.name)
            if any(text in arg for arg in argv_of(pid)) and _live(pid):
                found.append(pid)
    return found


def host_pid(kernel: int, pid: int) -> int:
    """The host pid of the process a kernel (host pid `kernel`) knows as `pid`: the same number
    unless the kernel runs in a pid namespace of its own, as in the sandbox."""
    namespace = os.readlink(f"/proc/{kernel}/ns/pid")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        nspids = next(
            (line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), []
        )
        if nspids and int(nspids[-1]) == pid:
            return int(entry.name)
    raise LookupError(f"no process is {pid} in the pid namespace of kernel {kernel}")
