"""One-command benchmark: `uv run python bench/cold_start.py [--n 5] [--repeat 3] [--plot]`.

Measures, in one run, the time from launching the server process to the first `run_python_code`
result over stdio (the way a desktop client starts it), with the FastMCP Client and with raw
JSON-RPC lines, against launching a bare kernel with jupyter_client and running the same cell.
Prints p50 of each and the ratio, for each of `--repeat` runs of `--n` rounds (each run with the
load average); `--plot` draws every start as a PNG. Budget: under 1.5 s. The FastMCP Client adds its own work
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import plots
from bench.common import load, run_cell

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
    # the environment the raw path's server gets too (the client passes only a few variables by
    # default, and an index setting among the missing ones would give the server another
    # environment layer to build)
    transport = StdioTransport(
        command=sys.executable, args=server_args(workspace), env=dict(os.environ), keep_alive=False
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
        # its own reply and idle status: wait_for_ready leaves kernel_info_replies queued
        reply = await run_cell(kc, CODE, timeout_s=60)
        elapsed = time.perf_counter() - start
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return elapsed


LABELS = {
    "bare": "bare kernel + first cell",
    "raw": "stdio, raw JSON-RPC",
    "ours": "stdio, FastMCP Client",
}


def write_run(title: str, times: dict[str, list[float]]) -> None:
    p50_bare = statistics.median(times["bare"])
    lines = [title]
    lines.append(f"bare jupyter_client kernel              p50 {p50_bare * 1000:7.0f} ms")
    for name, key in (("stdio, raw JSON-RPC", "raw"), ("stdio, FastMCP Client", "ours")):
        p50 = statistics.median(times[key])
        lines.append(
            f"python-mcp-server, {name:21s} p50 {p50 * 1000:7.0f} ms  "
            f"ratio {p50 / p50_bare:.2f}x  (budget 1.5x)"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5, help="rounds in each run")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    parser.add_argument(
        "--plot",
        type=Path,
        nargs="?",
        const=plots.DEFAULT_PATHS["cold_start"],
        help=f"draw every start as PNG (default {plots.DEFAULT_PATHS['cold_start']})",
    )
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {key: [] for key in LABELS}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.repeat + 1):
            before = load()
            times: dict[str, list[float]] = {key: [] for key in LABELS}
            for i in range(args.n):
                ws = Path(tmp) / f"ws{run}-{i}"
                ws.mkdir()
                times["ours"].append(await server_cold_start(ws))
                times["raw"].append(await raw_cold_start(ws))
                times["bare"].append(await bare_cold_start())
            write_run(
                f"cold start to first result, n={args.n}, run {run}/{args.repeat}   "
                f"[before {before}, after {load()}]",
                times,
            )
            for key, values in times.items():
                pooled[key].extend(values)
    if args.repeat > 1:
        write_run(f"all {args.repeat} runs together, n={args.n * args.repeat}", pooled)
    if args.plot is not None:
        path = plots.cold_start(
            {LABELS[key]: pooled[key] for key in LABELS},
            args.plot,
            title=f"launch to first result ({args.repeat} runs pooled)",
        )
        sys.stdout.write(f"plot: {path}\n")


if __name__ == "__main__":
    asyncio.run(main())
