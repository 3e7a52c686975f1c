"""One-command benchmark: `uv run python bench/layers.py [--n 400] [--repeat 3]`.

Where the server's CPU per `run_python_code("x = 1")` goes, layer by layer, in one run:
  1. a bare jupyter_client round trip: the CPU its client spends (the floor's own client cost);
  2. this project's execution service alone (session, kernel messages, result), in this process;
  3. the same through FastMCP's `call_tool` (tool lookup, middleware, argument validation and
     the result's serialisation), in this process;
  4. the whole server over streamable HTTP (uvicorn, the ASGI chain, the MCP SDK, 3 and 2), as
     the server process's CPU per call, driven by the minimal HTTP/1.1 client of `bench/run.py`.
Each layer runs `--n` calls in turn, `--repeat` rounds, each round printed with the load average.
The differences between rows are what each layer adds. Budget (issue 17): the server's own CPU
per call (row 4) at or under 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastmcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import cpu_clock, load
from bench.run import CODE, BareKernel, MinimalHttp
from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services import Services
from tests.servers import http_server

Call = Callable[[], Awaitable[object]]
ROWS = (
    "bare jupyter_client (its client's CPU)",
    "execution service, in process",
    "FastMCP call_tool, in process",
    "server over HTTP (server process CPU)",
)


async def cpu_per_call(call: Call, n: int, clock: Callable[[], float]) -> tuple[float, float]:
    """CPU ms per call by `clock`, and the p50 wall time in ms."""
    walls = []
    began = clock()
    for _ in range(n):
        start = time.perf_counter()
        await call()
        walls.append(time.perf_counter() - start)
    return (clock() - began) * 1000 / n, statistics.median(walls) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="calls per layer and round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each printed with its load")
    args = parser.parse_args()
    out = sys.stdout
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("in-process", "http"):
            (root / name).mkdir()
        config = ServerConfig(workspace_dir=root / "in-process", kernel_pool_size=0)
        mcp = create_server(config)  # its own services, opened by the client's lifespan
        async with BareKernel() as bare, Services.open(config) as services, Client(mcp):
            with http_server(root / "http", "--log-level", "WARNING") as server:
                async with MinimalHttp(server.url) as http:
                    here = time.process_time
                    layers: list[tuple[Call, Callable[[], float]]] = [
                        (bare.once, here),
                        (lambda: services.execution.run("default", CODE), here),
                        (lambda: mcp.call_tool("run_python_code", {"code": CODE}), here),
                        (http.once, cpu_clock(server.process.pid)),
                    ]
                    for call, clock in layers:  # warm each path up: kernels, first imports
                        await cpu_per_call(call, 30, clock)
                    for run in range(1, args.repeat + 1):
                        before = load()
                        figures = [await cpu_per_call(c, args.n, k) for c, k in layers]
                        out.write(
                            f"x = 1, CPU per call by layer, n={args.n}   [run {run}/{args.repeat}, "
                            f"before {before}, after {load()}]\n"
                        )
                        previous = None
                        for row, (cpu, wall) in zip(ROWS, figures, strict=True):
                            added = "" if previous is None else f"  (+{cpu - previous:.2f} ms)"
                            out.write(f"  {row:40s} {cpu:6.2f} ms CPU  p50 {wall:6.2f} ms{added}\n")
                            previous = cpu if row != ROWS[0] else None
                        out.flush()
    out.write(
        "Rows 2-4 add up: each includes the one above it (row 1 is the floor's own client). "
        "Budget: row 4 <= 1 ms.\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
