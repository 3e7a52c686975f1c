"""One-command benchmark: `uv run python bench/cold_start.py [--n 5]`.

Measures, in one run, the time from launching the server process to the first `run_python_code`
result over stdio (the way a desktop client starts it), with the FastMCP Client and with raw
JSON-RPC lines, against launching a bare kernel with jupyter_client and running the same cell.
Prints p50 of each and the ratio. Budget: under 1.5 s. The FastMCP Client adds its own work
(it compiles the tool's output schema into a type before the first result), so the raw figure
is the server's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from jupyter_client.manager import AsyncKernelManager

CODE = "1 + 1"


def server_args(workspace: Path) -> list[str]:
    return [
        "-m",
        "python_mcp_server",
        "--transport",
        "stdio",
        "--workspace-dir",
        str(workspace),
        "--log-level",
        "WARNING",
    ]


async def server_cold_start(workspace: Path) -> float:
    transport = StdioTransport(
        command=sys.executable, args=server_args(workspace), keep_alive=False
    )
    start = time.perf_counter()
    async with Client(transport) as client:
        res = await client.call_tool("run_python_code", {"code": CODE})
        elapsed = time.perf_counter() - start
    assert res.structured_content is not None
    assert res.structured_content["result"] == "2"
    return elapsed


async def raw_cold_start(workspace: Path) -> float:
    """Launch, handshake (2025-11-25) and one tools/call as newline-delimited JSON-RPC."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *server_args(workspace),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def call(msg_id: int, method: str, params: dict[str, object]) -> dict[str, object]:
        line = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        stdin.write(json.dumps(line).encode() + b"\n")
        await stdin.drain()
        while True:
            reply: dict[str, object] = json.loads(await asyncio.wait_for(stdout.readline(), 60))
            if reply.get("id") == msg_id:
                return reply

    try:
        await call(
            1,
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"},
            },
        )
        stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        reply = await call(
            2, "tools/call", {"name": "run_python_code", "arguments": {"code": CODE}}
        )
        elapsed = time.perf_counter() - start
        result = reply["result"]
        assert isinstance(result, dict)
        assert result["structuredContent"]["result"] == "2"
    finally:
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return elapsed


async def bare_cold_start() -> float:
    start = time.perf_counter()
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        reply = await kc.execute_interactive(CODE, timeout=60, output_hook=lambda msg: None)
        elapsed = time.perf_counter() - start
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()
    ours: list[float] = []
    raw: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            ws = Path(tmp) / f"ws{i}"
            ws.mkdir()
            ours.append(await server_cold_start(ws))
            raw.append(await raw_cold_start(ws))
            bare.append(await bare_cold_start())
    p50_bare = statistics.median(bare)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"cold start to first result, n={args.n}, load average {load}"]
    lines.append(f"bare jupyter_client kernel              p50 {p50_bare * 1000:7.0f} ms")
    for name, samples in (("stdio, raw JSON-RPC", raw), ("stdio, FastMCP Client", ours)):
        p50 = statistics.median(samples)
        lines.append(
            f"python-mcp-server, {name:21s} p50 {p50 * 1000:7.0f} ms  "
            f"ratio {p50 / p50_bare:.2f}x  (budget 1500 ms)"
        )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
