"""One-command benchmark: `uv run python bench/layers.py [--n 400] [--repeat 3]`.

Where the server's CPU per `run_python_code("x = 1")` goes, layer by layer, in one run:
  1. a bare jupyter_client round trip: the CPU its client spends (the floor's own client cost);
  2. this project's execution service alone (session, kernel messages, result), in this process;
  3. the same through FastMCP's `call_tool` (tool lookup, middleware, argument validation and
     the result's serialisation), in this process;
  4. the execution service behind a bare ASGI callable on uvicorn (`bench/asgi_floor.py`: no
     Starlette, no MCP), as that process's CPU per call: the floor of any HTTP server here;
  5. the whole server over streamable HTTP (uvicorn, the ASGI chain, the MCP SDK, 3 and 2), as
     the server process's CPU per call.
Rows 4 and 5 are driven by the minimal HTTP/1.1 client of `bench/run.py`. Each layer runs `--n`
calls in turn, `--repeat` rounds, each round printed with the load average and what each row
adds to the one it builds on. Budget (issue 17): the server's own CPU per call (row 5) at or
under 1 ms.
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
from bench.asgi_floor import floor_server
from bench.common import cpu_clock, load
from bench.run import CODE, BareKernel, MinimalHttp
from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services import Services
from tests.servers import free_port, http_server

Call = Callable[[], Awaitable[object]]
# each row's label and the row it adds to (an index into ROWS), if any
ROWS: tuple[tuple[str, int | None], ...] = (
    ("bare jupyter_client (its client's CPU)", None),
    ("execution service, in process", None),
    ("FastMCP call_tool, in process", 1),
    ("bare ASGI on uvicorn, no MCP (process CPU)", 1),
    ("server over HTTP (server process CPU)", 3),
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
        for name in ("in-process", "floor", "http"):
            (root / name).mkdir()
        config = ServerConfig(workspace_dir=root / "in-process", kernel_pool_size=0)
        mcp = create_server(config)  # its own services, opened by the client's lifespan
        async with BareKernel() as bare, Services.open(config) as services, Client(mcp):
            with (
                floor_server(root / "floor", free_port()) as (floor_url, floor_process),
                http_server(root / "http", "--log-level", "WARNING") as server,
            ):
                async with MinimalHttp(floor_url) as floor, MinimalHttp(server.url) as http:
                    here = time.process_time
                    layers: list[tuple[Call, Callable[[], float]]] = [
                        (bare.once, here),
                        (lambda: services.execution.run("default", CODE), here),
                        (lambda: mcp.call_tool("run_python_code", {"code": CODE}), here),
                        (floor.once, cpu_clock(floor_process.pid)),
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
                        for i, ((row, base), (cpu, wall)) in enumerate(
                            zip(ROWS, figures, strict=True), start=1
                        ):
                            added = (
                                ""
                                if base is None
                                else f"  (+{cpu - figures[base][0]:.2f} ms over row {base + 1})"
                            )
                            out.write(
                                f"  {i}. {row:44s} {cpu:6.2f} ms CPU  p50 {wall:6.2f} ms{added}\n"
                            )
                        out.flush()
    out.write(
        "Row 1 is the floor's own client; row 4 is the floor of any HTTP server here (uvicorn "
        "and the execution service, nothing else). Budget: row 5 <= 1 ms.\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
