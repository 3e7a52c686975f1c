"""The server over stdio, as a desktop client launches it."""

from __future__ import annotations

import asyncio
import json
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import anyio
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


class RawStdio:
    """The server over stdio driven line by line, as a client library would, with bounded reads."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode("utf-8", "surrogatepass") + b"\n")
        await self.proc.stdin.drain()

    async def answer(self, timeout_s: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with anyio.fail_after(timeout_s):
            line = await self.proc.stdout.readline()
        assert line, "the server closed its output"
        return dict(json.loads(line))


def modern(request_id: int, method: str, params: dict[str, Any]) -> str:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": meta}}
    )


async def test_every_unreadable_line_over_stdio_gets_an_answer(workspace: Path) -> None:
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=PIPE, stdout=PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    stdio = RawStdio(proc)
    try:
        await stdio.send_line("this is not json")
        parse = await stdio.answer()
        assert parse["id"] is None
        assert parse["error"]["code"] == -32700
        assert "not JSON" in parse["error"]["message"]

        await stdio.send_line('{"jsonrpc": "2.0", "id": 5, "method": 3}')
        invalid = await stdio.answer()
        assert invalid["id"] == 5
        assert invalid["error"]["code"] == -32600
        assert "method" in invalid["error"]["message"]

        # json.dumps writes an unpaired surrogate as the escape \udfff; the SDK cannot read it
        code = "x = 1  # \udfff"
        call = {"name": "run_python_code", "arguments": {"code": code}}
        await stdio.send_line(modern(6, "tools/call", call))
        refused = await stdio.answer()
        assert refused["id"] == 6
        assert refused["result"]["isError"] is True
        text = refused["result"]["content"][0]["text"]
        assert "line 1, column 10" in text

        ok = {"name": "run_python_code", "arguments": {"code": "'still serving'"}}
        await stdio.send_line(modern(7, "tools/call", ok))
        served = await stdio.answer()
        assert served["id"] == 7
        assert served["result"]["structuredContent"]["result"] == "'still serving'"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        with anyio.fail_after(30):
            await proc.wait()
