"""One-command benchmark: `uv run python bench/pool.py [--n 15] [--repeat 3]`.

Measures, in one run, `create_session` latency through the FastMCP in-memory client:
  1. with the warm pool (--kernel-pool-size 1): each create takes the pre-started kernel; the
     benchmark waits for the pool to refill before the next create (steady state);
  2. cold (--kernel-pool-size 0): each create starts a kernel.
Each session is deleted right after. Prints p50/p95 for both and the ratio cold/pool, for each
of `--repeat` runs, with the load average.
Budget: pool p50 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import load

BUDGET_MS = 100.0


async def _pool_ready(client: Client[Any], size: int) -> None:
    async with asyncio.timeout(120):
        while True:
            res = await client.call_tool("get_kernel_health", {})
            assert res.structured_content is not None
            if res.structured_content["pool"]["ready"] >= size:
                return
            await asyncio.sleep(0.05)


async def measure(pool_size: int, n: int, workspace: Path) -> list[float]:
    config = ServerConfig(workspace_dir=workspace, kernel_pool_size=pool_size)
    times: list[float] = []
    async with Client(create_server(config)) as client:
        for i in range(n):
            if pool_size:
                await _pool_ready(client, pool_size)
            started = time.perf_counter()
            await client.call_tool("create_session", {"session_id": f"bench-{i}"})
            times.append((time.perf_counter() - started) * 1000)
            await client.call_tool("delete_session", {"session_id": f"bench-{i}"})
    return times


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15, help="create_session calls per mode")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    args = parser.parse_args()
    for run in range(1, args.repeat + 1):
        before = load()
        with tempfile.TemporaryDirectory() as tmp:
            pooled = await measure(1, args.n, Path(tmp) / "pool")
            cold = await measure(0, args.n, Path(tmp) / "cold")
        pool_p50, cold_p50 = statistics.median(pooled), statistics.median(cold)
        print(
            f"create_session, {args.n} calls each (ms), run {run}/{args.repeat}   "
            f"[before {before}, after {load()}]"
        )
        print(f"  warm pool (size 1): p50 {pool_p50:8.1f}   p95 {_p(pooled, 0.95):8.1f}")
        print(f"  cold (size 0):      p50 {cold_p50:8.1f}   p95 {_p(cold, 0.95):8.1f}")
        print(f"  ratio cold/pool (p50): {cold_p50 / pool_p50:.1f}x")
        verdict = "within" if pool_p50 < BUDGET_MS else "OVER"
        print(f"  budget: pool p50 < {BUDGET_MS:.0f} ms -> {verdict} budget", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
