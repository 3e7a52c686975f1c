"""One-command benchmark: `uv run python bench/cold_start.py [--n 5]`.

Measures, in one run, the time from launching the server process to the first `run_python_code`
result over stdio (the way a desktop client starts it), against launching a bare kernel with
jupyter_client and running the same cell. Prints p50 of each and the ratio. Budget: under 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from jupyter_client.manager import AsyncKernelManager

CODE = "1 + 1"


async def server_cold_start(workspace: Path) -> float:
    transport = StdioTransport(
        command=sys.executable,
        args=[
            "-m",
            "python_mcp_server",
            "--transport",
            "stdio",
            "--workspace-dir",
            str(workspace),
            "--log-level",
            "WARNING",
        ],
        keep_alive=False,
    )
    start = time.perf_counter()
    async with Client(transport) as client:
        res = await client.call_tool("run_python_code", {"code": CODE})
        elapsed = time.perf_counter() - start
    assert res.structured_content is not None
    assert res.structured_content["result"] == "2"
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
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            ws = Path(tmp) / f"ws{i}"
            ws.mkdir()
            ours.append(await server_cold_start(ws))
            bare.append(await bare_cold_start())
    p50_ours, p50_bare = statistics.median(ours), statistics.median(bare)
    sys.stdout.write(
        f"cold start to first result, n={args.n}\n"
        f"bare jupyter_client kernel        p50 {p50_bare * 1000:7.0f} ms\n"
        f"python-mcp-server over stdio      p50 {p50_ours * 1000:7.0f} ms  "
        f"ratio {p50_ours / p50_bare:.2f}x  (budget 1500 ms)\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
