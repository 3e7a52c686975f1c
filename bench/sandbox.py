"""One-command benchmark: `uv run python bench/sandbox.py [--n 300] [--starts 7] [--repeat 3]`.

What the kernel sandbox costs, measured in one run:
  1. `x = 1` through run_python_code (FastMCP in-memory client), sandboxed and plain servers side by
     side, interleaved call by call (the order alternates every round): p50/p95 and the ratio
     sandboxed/plain. Budget: p50 ratio <= 1.1.
  2. kernel start to first reply (the backend's start: launch, wait for ready, load the kernel-side
     extension), sandboxed and plain alternately: p50 of each and the difference. Budget: +0.15 s.
  3. create_session from the warm pool on the sandboxed server (the benchmark waits for the pool to
     refill between creates). Budget: p50 under 100 ms.
Each is measured `--repeat` times, the load average printed beside each figure: on a shared
machine, compare runs with like loads.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.kernels import LocalBackend
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from python_mcp_server.services.kernel_start import KernelStarter
from python_mcp_server.services.sandboxing import sandbox_factory

CALL_RATIO_BUDGET = 1.1
START_BUDGET_S = 0.15
POOL_BUDGET_MS = 100.0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


async def _call(client: Client[Any]) -> float:
    started = time.perf_counter()
    res = await client.call_tool("run_python_code", {"code": "x = 1"})
    elapsed = (time.perf_counter() - started) * 1000
    assert res.structured_content is not None
    assert res.structured_content["status"] == "ok"
    return elapsed


async def calls(base: ServerConfig, n: int) -> dict[str, list[float]]:
    sandboxed = dataclasses.replace(base, sandbox="on", workspace_dir=base.workspace_dir / "sbx")
    plain = dataclasses.replace(base, sandbox="off", workspace_dir=base.workspace_dir / "plain")
    times: dict[str, list[float]] = {"sandboxed": [], "plain": []}
    async with Client(create_server(sandboxed)) as sbx, Client(create_server(plain)) as pln:
        clients = {"sandboxed": sbx, "plain": pln}
        for client in clients.values():  # warm up: start the kernels, first imports
            for _ in range(20):
                await _call(client)
        for i in range(n):
            order = ["sandboxed", "plain"] if i % 2 == 0 else ["plain", "sandboxed"]
            for name in order:
                times[name].append(await _call(clients[name]))
    return times


async def starts(base: ServerConfig, n: int) -> dict[str, list[float]]:
    plan = plan_sandbox(dataclasses.replace(base, sandbox="on"))
    sandbox = sandbox_factory(plan, base)
    times: dict[str, list[float]] = {"sandboxed": [], "plain": []}
    backends = {"sandboxed": LocalBackend(sandbox=sandbox), "plain": LocalBackend()}
    try:
        starters = {
            name: KernelStarter(base, backend, lambda: 1 << 20)
            for name, backend in backends.items()
        }
        for i in range(n):
            order = ["sandboxed", "plain"] if i % 2 == 0 else ["plain", "sandboxed"]
            for name in order:
                began = time.perf_counter()
                ready = await starters[name].cold_start()
                times[name].append(time.perf_counter() - began)
                await ready.aclose()
    finally:
        for backend in backends.values():
            await backend.aclose()
    return times


async def pool_creates(base: ServerConfig, n: int) -> list[float]:
    config = dataclasses.replace(
        base, sandbox="on", kernel_pool_size=1, workspace_dir=base.workspace_dir / "pool"
    )
    times: list[float] = []
    async with Client(create_server(config)) as client:
        for i in range(n):
            async with asyncio.timeout(120):
                while True:
                    res = await client.call_tool("get_kernel_health", {})
                    assert res.structured_content is not None
                    if res.structured_content["pool"]["ready"] >= 1:
                        break
                    await asyncio.sleep(0.05)
            began = time.perf_counter()
            await client.call_tool("create_session", {"session_id": f"b-{i}"})
            times.append((time.perf_counter() - began) * 1000)
            await client.call_tool("delete_session", {"session_id": f"b-{i}"})
    return times


async def run_once(base: ServerConfig, args: argparse.Namespace, title: str) -> None:
    timed = await calls(base, args.n)
    load_calls = _load()
    started = await starts(base, args.starts)
    load_starts = _load()
    pooled = await pool_creates(base, args.creates)
    load_pool = _load()
    s50, p50 = statistics.median(timed["sandboxed"]), statistics.median(timed["plain"])
    ratio = s50 / p50
    print(title)
    print(f"x = 1 through run_python_code, {args.n} interleaved calls each (ms)   [{load_calls}]")
    for name in ("plain", "sandboxed"):
        values = timed[name]
        print(f"  {name:10} p50 {statistics.median(values):7.2f}   p95 {_p(values, 0.95):7.2f}")
    print(
        f"  ratio sandboxed/plain: p50 {ratio:.3f}x, "
        f"p95 {_p(timed['sandboxed'], 0.95) / _p(timed['plain'], 0.95):.3f}x"
        f" -> {'within' if ratio <= CALL_RATIO_BUDGET else 'OVER'} budget ({CALL_RATIO_BUDGET}x)"
    )
    ss, ps = statistics.median(started["sandboxed"]), statistics.median(started["plain"])
    print(f"kernel start to ready, {args.starts} alternating starts each (s)   [{load_starts}]")
    print(f"  plain p50 {ps:.3f}   sandboxed p50 {ss:.3f}   difference {ss - ps:+.3f}", end="")
    print(f" -> {'within' if ss - ps <= START_BUDGET_S else 'OVER'} budget (+{START_BUDGET_S} s)")
    pool50 = statistics.median(pooled)
    print(
        f"create_session from the warm pool, sandboxed, {args.creates} calls (ms)   [{load_pool}]"
    )
    print(f"  p50 {pool50:.1f}   p95 {_p(pooled, 0.95):.1f}", end="")
    print(
        f" -> {'within' if pool50 < POOL_BUDGET_MS else 'OVER'} budget ({POOL_BUDGET_MS:.0f} ms)",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="x = 1 calls per mode")
    parser.add_argument("--starts", type=int, default=7, help="kernel starts per mode")
    parser.add_argument("--creates", type=int, default=10, help="create_session calls")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    args = parser.parse_args()
    if not plan_sandbox(ServerConfig(sandbox="auto")).enabled:
        raise SystemExit("kernels cannot be sandboxed on this host; see docs/security.md")
    for run in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            base = ServerConfig(workspace_dir=Path(tmp), kernel_pool_size=0)
            await run_once(base, args, f"run {run}/{args.repeat}   [{_load()} at its start]")


if __name__ == "__main__":
    asyncio.run(main())
