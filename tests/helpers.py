"""Small helpers the tool tests share: call a tool, read its error, wait for a file, run a cell
in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from fastmcp import Client
from mcp.types import TextContent

# A cell that writes `started`, sleeps for a minute, and writes `interrupted` if interrupted.
SLEEP_UNTIL_INTERRUPTED = (
    "import time\n"
    "open('started', 'w').close()\n"
    "try:\n"
    "    time.sleep(60)\n"
    "except KeyboardInterrupt:\n"
    "    open('interrupted', 'w').close()\n"
    "    raise"
)

# A cell that writes `started`, then loops forever, swallowing every KeyboardInterrupt.
IGNORES_INTERRUPTS = (
    "import time\nopen('started', 'w').close()\n"
    "while True:\n"
    "    try:\n"
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
