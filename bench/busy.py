"""One-command benchmark: `uv run python bench/busy.py [--n 100] [--sessions 8] [--repeat 3]`.

Measures, in one run, against one server over streamable HTTP (raw httpx JSON-RPC):
  1. `ping` and `tools/list` while the server is idle, then while a cell runs for the whole
     measurement in another session: p50/p95 and the ratio busy/idle (budget: under 20 ms);
  2. the server's own memory with `--sessions` idle sessions, kernels excluded (budget: under
     150 MB RSS), against the same server with no session.
The latencies are measured `--repeat` times, each run printed with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Rpc, load, pct
from tests.servers import http_server

PING_BUDGET_MS = 20.0
RSS_BUDGET_MB = 150.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def latencies(rpc: Rpc, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ping": [], "tools/list": []}
    for _ in range(n):
        start = time.perf_counter()
        await rpc.tool("ping")
        out["ping"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await rpc("tools/list", {})
        out["tools/list"].append((time.perf_counter() - start) * 1000)
    return out


async def busy_run(rpc: Rpc, n: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Latencies while the server is idle, then while a cell runs in session s0."""
    idle = await latencies(rpc, n)
    seconds = 600
    long_cell = asyncio.create_task(
        rpc.tool(
            "run_python_code",
            session_id="s0",
            code=f"import time\nfor _ in range({seconds * 10}): time.sleep(0.1)",
        )
    )
    await rpc.tool("run_python_code", session_id="s1", code="x = 2")  # it has started
    busy = await latencies(rpc, n)
    assert not long_cell.done(), "the long cell ended before the measurement did"
    await rpc.tool("interrupt_kernel", session_id="s0")
    await long_cell
    return idle, busy


def write_run(title: str, idle: dict[str, list[float]], busy: dict[str, list[float]]) -> None:
    sys.stdout.write(title + "\n")
    for name in ("ping", "tools/list"):
        i50, b50, b95 = pct(idle[name], 0.5), pct(busy[name], 0.5), pct(busy[name], 0.95)
        verdict = "within" if b95 < PING_BUDGET_MS else "OVER"
        sys.stdout.write(
            f"  {name:10s} idle p50 {i50:6.2f} ms   busy p50 {b50:6.2f} ms p95 {b95:6.2f} ms   "
            f"ratio p50 {b50 / i50:.2f}x   budget {PING_BUDGET_MS:.0f} ms: {verdict}\n"
        )
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    args = parser.parse_args()
    if args.sessions < 2:
        parser.error("--sessions must be 2 or more: one runs the long cell, one shows it started")
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        with http_server(ws, "--log-level", "WARNING") as server:
            async with httpx.AsyncClient(timeout=120) as client:
                rpc = Rpc(client, server.url)
                await latencies(rpc, 10)  # warm up
                rss_empty = rss_mb(server.process.pid)
                for i in range(args.sessions):
                    await rpc.tool("create_session", session_id=f"s{i}")
                    await rpc.tool("run_python_code", session_id=f"s{i}", code="x = 1")
                rss_sessions = rss_mb(server.process.pid)
                rss_load = load()
                for run in range(1, args.repeat + 1):
                    before = load()
                    idle, busy = await busy_run(rpc, args.n)
                    write_run(
                        f"while a cell runs in another session, n={args.n} each, run {run}/"
                        f"{args.repeat}   [before {before}, after {load()}]",
                        idle,
                        busy,
                    )
    verdict = "within" if rss_sessions < RSS_BUDGET_MB else "OVER"
    sys.stdout.write(
        f"server RSS, kernels excluded: {rss_empty:.0f} MB with no session, "
        f"{rss_sessions:.0f} MB with {args.sessions} idle sessions "
        f"(budget {RSS_BUDGET_MB:.0f} MB: {verdict})   [{rss_load}]\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
