"""The server over stdio, as a desktop client launches it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from tests.conftest import pid_alive
from tests.servers import server_command

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]


async def test_stdio_serves_code_and_end_of_input_shuts_the_kernel_down(workspace: Path) -> None:
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    transport = StdioTransport(command=cmd[0], args=cmd[1:], keep_alive=False)
    async with Client(transport) as client:
        res = await client.call_tool(
            "run_python_code", {"code": "import os; print('hi'); os.getpid()"}
        )
        data = res.structured_content
        assert data is not None
        assert data["stdout"] == "hi\n"
        kernel_pid = int(data["result"])
        assert pid_alive(kernel_pid)
        # a kernel writing straight to file descriptor 1 must not reach the MCP wire
        noisy = await client.call_tool(
            "run_python_code", {"code": "import os; os.write(1, b'not json\\n'); 'still fine'"}
        )
        assert noisy.structured_content is not None
        assert noisy.structured_content["result"] == "'still fine'"
    # the transport closed the server's stdin and waited for it to exit
    assert not pid_alive(kernel_pid)
