"""Many sessions at once: no errors, no output crossing sessions."""

from __future__ import annotations

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(180)]

SESSIONS = 8
CELLS = 25


async def test_eight_sessions_of_twenty_five_cells_never_cross_outputs(
    config: ServerConfig,
) -> None:
    seen: dict[str, list[tuple[str, str, str | None]]] = {}
    async with Client(create_server(config)) as client:

        async def worker(sid: str) -> None:
            await client.call_tool("create_session", {"session_id": sid})
            rows = seen.setdefault(sid, [])
            await client.call_tool("run_python_code", {"code": "n = 0", "session_id": sid})
            for i in range(CELLS):
                res = await client.call_tool(
                    "run_python_code",
                    {"code": f"n += 1\nprint('{sid}', {i})\n('{sid}', n)", "session_id": sid},
                )
                data = res.structured_content
                assert data is not None
                rows.append((data["status"], data["stdout"], data["result"]))

        async with anyio.create_task_group() as tg:
            for k in range(SESSIONS):
                tg.start_soon(worker, f"w{k}")
    for sid, rows in seen.items():
        assert rows == [("ok", f"{sid} {i}\n", f"('{sid}', {i + 1})") for i in range(CELLS)]
