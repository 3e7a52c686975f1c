"""The server over stdio, as a desktop client launches it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from python_mcp_server.transports.stdio import MAX_LINE_BYTES, LineReader, parse_line
from tests.conftest import pid_alive
from tests.helpers import (
    IGNORES_INTERRUPTS,
    SLEEP_UNTIL_INTERRUPTED,
    argv_of,
    descendants,
    kernel_pid,
    processes_naming,
    wait_for_file,
)
from tests.servers import sandbox_env, server_command, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]


async def test_stdio_serves_code_and_end_of_input_shuts_the_kernel_down(workspace: Path) -> None:
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    transport = StdioTransport(command=cmd[0], args=cmd[1:], env=sandbox_env(), keep_alive=False)
    async with Client(transport) as client:
        res = await client.call_tool("run_python_code", {"code": "print('hi')"})
        data = res.structured_content
        assert data is not None
        assert data["stdout"] == "hi\n"
        pid = await kernel_pid(client)
        assert pid_alive(pid)
        # a kernel writing straight to file descriptor 1 must not reach the MCP wire
        noisy = await client.call_tool(
            "run_python_code", {"code": "import os; os.write(1, b'not json\\n'); 'still fine'"}
        )
        assert noisy.structured_content is not None
        assert noisy.structured_content["result"] == "'still fine'"
    # the transport closed the server's stdin and waited for it to exit
    assert not pid_alive(pid)


class RawStdio:
    """The server over stdio driven line by line, as a client library would, with bounded reads."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode("utf-8", "surrogatepass") + b"\n")
        await self.proc.stdin.drain()

    async def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
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


@asynccontextmanager
async def raw_stdio(workspace: Path) -> AsyncIterator[RawStdio]:
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=PIPE, stdout=PIPE, stderr=asyncio.subprocess.DEVNULL, env=server_env()
    )
    try:
        yield RawStdio(proc)
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            with anyio.fail_after(30):
                await proc.wait()


async def test_every_unreadable_line_over_stdio_gets_an_answer(workspace: Path) -> None:
    async with raw_stdio(workspace) as stdio:
        before = {"name": "run_python_code", "arguments": {"code": "1"}}
        await stdio.send_line(
            json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": before})
        )
        not_started = await stdio.answer()
        assert not_started["id"] == 4
        assert "send 'initialize' first" in not_started["error"]["message"]

        await stdio.send_line("this is not json")
        parse = await stdio.answer()
        assert parse["id"] is None
        assert parse["error"]["code"] == -32700
        assert "not JSON" in parse["error"]["message"]

        await stdio.send_line('{"jsonrpc": "2.0", "id": 5, "method": 3}')
        invalid = await stdio.answer()
        assert invalid["id"] == 5
        assert invalid["error"]["code"] == -32600
        assert "method: Input should be a valid string" in invalid["error"]["message"]

        await stdio.send_line("")  # a blank line is not a message: no answer
        await stdio.send_raw(b'{"jsonrpc": "2.0", "id": 8, "method": "caf\xe9"}\n')
        latin1 = await stdio.answer()
        assert latin1["error"]["code"] == -32700
        assert "not UTF-8 (byte 0xe9" in latin1["error"]["message"]

        await stdio.send_line('{"jsonrpc": "2.0", "id": true, "method": "ping"}')
        bad_id = await stdio.answer()
        assert bad_id["id"] is None
        assert bad_id["error"]["code"] == -32600

        await stdio.send_line(json.dumps({"jsonrpc": "2.0", "id": "a\udfff", "method": "ping"}))
        surrogate_id = await stdio.answer()
        assert surrogate_id["id"] is None
        assert "its id contains an unpaired surrogate" in surrogate_id["error"]["message"]

        await stdio.send_line(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "pi\udfffng"}))
        surrogate_method = await stdio.answer()
        assert surrogate_method["id"] == 9
        assert "its method contains an unpaired surrogate" in surrogate_method["error"]["message"]

        deep = '{"jsonrpc": "2.0", "id": 10, "method": "ping", "params": {"a": ' + "[" * 5000
        await stdio.send_line(deep + "]" * 5000 + "}}")
        nested = await stdio.answer()
        assert nested["error"]["code"] in (-32700, -32600)

        # json.dumps writes an unpaired surrogate as the escape \udfff; the SDK cannot read it
        code = "x = 1  # \udfff"
        call = {"name": "run_python_code", "arguments": {"code": code}}
        await stdio.send_line(modern(6, "tools/call", call))
        refused = await stdio.answer()
        assert refused["id"] == 6
        assert refused["result"]["isError"] is True
        text = refused["result"]["content"][0]["text"]
        assert "line 1, column 10" in text

        read = {"name": "read_file", "arguments": {"path": "notes\udfff.txt"}}
        await stdio.send_line(modern(11, "tools/call", read))
        bad_path = await stdio.answer()
        assert bad_path["result"]["isError"] is True
        assert "The path contains an unpaired surrogate" in bad_path["result"]["content"][0]["text"]

        ok = {"name": "run_python_code", "arguments": {"code": "'still serving'"}}
        await stdio.send_line(modern(7, "tools/call", ok))
        served = await stdio.answer()
        assert served["id"] == 7
        assert served["result"]["structuredContent"]["result"] == "'still serving'"


async def test_an_answer_that_cannot_be_encoded_does_not_stop_the_server(workspace: Path) -> None:
    # the progress notifications repeat the client's token, which UTF-8 cannot encode
    async with raw_stdio(workspace) as stdio:
        call = {"name": "run_python_code", "arguments": {"code": "print('streamed')"}}
        line = json.loads(modern(1, "tools/call", call))
        line["params"]["_meta"]["progressToken"] = "p\udfff"
        await stdio.send_line(json.dumps(line))
        while "id" not in (answer := await stdio.answer()):
            assert answer["method"] == "notifications/progress"
            assert answer["params"]["progressToken"] == "p\ufffd"
        assert answer["result"]["structuredContent"]["stdout"] == "streamed\n"
        await stdio.send_line(modern(2, "tools/call", {"name": "ping", "arguments": {}}))
        assert (await stdio.answer())["id"] == 2


@pytest.mark.parametrize(
    "busy",
    [None, SLEEP_UNTIL_INTERRUPTED, IGNORES_INTERRUPTS],
    ids=["idle", "running a cell", "stubborn"],
)
async def test_a_signal_stops_the_stdio_server_while_its_input_is_still_open(
    workspace: Path, busy: str | None
) -> None:
    async with raw_stdio(workspace) as stdio:
        await stdio.send_line(
            modern(1, "tools/call", {"name": "run_python_code", "arguments": {"code": "1"}})
        )
        assert (await stdio.answer())["id"] == 1
        await stdio.send_line(modern(3, "tools/call", {"name": "list_sessions", "arguments": {}}))
        listed = (await stdio.answer())["result"]["structuredContent"]
        kernel_pid = int(listed["sessions"][0]["kernel_pid"])
        if busy:
            cell = {"name": "run_python_code", "arguments": {"code": busy}}
            await stdio.send_line(modern(2, "tools/call", cell))
            await wait_for_file(workspace / "started")
        stdio.proc.send_signal(signal.SIGTERM)
        if busy:  # the running call is interrupted and answered before the server stops
            answered = await stdio.answer(timeout_s=20)
            assert answered["id"] == 2
            assert "server is shutting down" in answered["result"]["structuredContent"]["message"]
        with anyio.fail_after(20):
            exit_code = await stdio.proc.wait()
    assert exit_code == 0
    assert not pid_alive(kernel_pid)


async def test_a_line_over_the_limit_is_answered_and_the_next_one_read() -> None:
    read_end, write_end = os.pipe()
    reader = LineReader(read_end)
    lines = [
        b"x" * (MAX_LINE_BYTES + 10) + b"\n",
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n',
    ]

    def feed() -> None:  # a pipe holds 64 KiB: write while the reader reads
        with os.fdopen(write_end, "wb") as pipe:
            pipe.writelines(lines)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, feed)
            with anyio.fail_after(30):
                long = await reader.next_line()
                after = await reader.next_line()
                end = await reader.next_line()
    finally:
        os.close(read_end)
    assert long is not None
    message, problem = parse_line(long)
    assert message is None
    assert problem is not None
    assert f"over {MAX_LINE_BYTES} bytes" in problem.error.message
    assert after is not None
    assert parse_line(after)[0] is not None
    assert end is None


@pytest.mark.parametrize("library", ["fastmcp", "mcp"])
async def test_a_client_library_gets_the_answer_of_a_call_running_at_shutdown(
    workspace: Path, library: str
) -> None:
    """The client lists the tools after the answer (to check it against the output schema, as it
    has not listed them yet): the server must still be there to answer."""
    from mcp import Client as SdkClient
    from mcp import StdioServerParameters

    hold = "import time\nopen('started', 'w').close()\ntime.sleep(120)"
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    client: Any = (
        Client(StdioTransport(command=cmd[0], args=cmd[1:], env=server_env(), keep_alive=False))
        if library == "fastmcp"
        else SdkClient(StdioServerParameters(command=cmd[0], args=cmd[1:], env=server_env()))
    )
    answers: list[Any] = []

    async def long_call() -> None:
        answers.append(await client.call_tool("run_python_code", {"code": hold}))

    async with client, anyio.create_task_group() as tg:
        tg.start_soon(long_call)
        await wait_for_file(workspace / "started")
        servers = [
            pid
            for pid in processes_naming(str(workspace))
            if argv_of(pid)[1:3] == ["-m", "python_mcp_server"]
        ]
        assert len(servers) == 1
        os.kill(servers[0], signal.SIGTERM)
    assert answers, "the call got no answer"
    data = answers[0].structured_content
    assert data["error"]["ename"] == "KeyboardInterrupt"
    assert data["message"].startswith("The server is shutting down, so this cell was interrupted")


# imported by no server that serves local kernels, before or during its first call: the gateway's
# client, the session-state store FastMCP would build on the first call, and jsonref (with
# requests), which FastMCP's inlining of schemas imports
NOT_FOR_SERVING = (
    "httpx",
    "jsonref",
    "key_value",
    "requests",
    "tornado.websocket",
    "python_mcp_server.kernels.gateway",
)


async def test_the_first_call_over_stdio_imports_only_what_serving_needs(
    workspace: Path, tmp_path: Path
) -> None:
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--log-level", "DEBUG"
    )
    log = tmp_path / "importtime.txt"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            cmd[0], "-X", "importtime", *cmd[1:], stdin=PIPE, stdout=PIPE, stderr=stderr,
            env=server_env(),
        )  # fmt: skip
        stdio = RawStdio(proc)
        try:
            code = "import sys; refused = 'debugpy' in sys.modules; import debugpy; refused"
            call = {"name": "run_python_code", "arguments": {"code": code}}
            await stdio.send_line(modern(1, "tools/call", call))
            answer = await stdio.answer()
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            with anyio.fail_after(30):
                await proc.wait()
    # the kernel started without ipykernel's debugger, and its code may still import debugpy
    assert answer["result"]["structuredContent"]["status"] == "ok"
    assert answer["result"]["structuredContent"]["result"] == "False"
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in log.read_text().splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "fastmcp" in imported
    # what the start built was frozen (the collector was off meanwhile), and collection is on
    frozen = re.search(r"started: (\d+) objects frozen, cycle collector on", log.read_text())
    assert frozen is not None
    assert int(frozen.group(1)) > 100_000
    unneeded = [m for m in sorted(imported) if m.split(".")[0] in NOT_FOR_SERVING]
    unneeded += [m for m in NOT_FOR_SERVING if "." in m and m in imported]
    assert unneeded == []


async def test_end_of_input_during_a_cell_that_ignores_interrupts_ends_without_an_error(
    workspace: Path,
) -> None:
    """The call is cancelled and the session closed under the cleanup that interrupts its cell:
    the server ends, with its kernel, and logs no failure for a session that is closing."""
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=server_env()
    )
    call = {"name": "run_python_code", "arguments": {"code": IGNORES_INTERRUPTS}}
    await RawStdio(proc).send_line(modern(1, "tools/call", call))
    await wait_for_file(workspace / "started")
    kernels = descendants(proc.pid)
    assert kernels
    assert proc.stdin is not None
    proc.stdin.close()
    with anyio.fail_after(60):
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    assert not [pid for pid in kernels if pid_alive(pid)]
