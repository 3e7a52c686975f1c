"""One-command benchmark: `uv run python bench/busy.py [--n 100] [--sessions 8]`.

Measures, in one run, against one server over streamable HTTP (raw httpx JSON-RPC):
  1. `ping` and `tools/list` while the server is idle, then while a cell runs for the whole
     measurement in another session: p50/p95 and the ratio busy/idle (budget: under 20 ms);
  2. the server's own memory with `--sessions` idle sessions, kernels excluded (budget: under
     150 MB RSS), against the same server with no session.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import http_server

PING_BUDGET_MS = 20.0
RSS_BUDGET_MB = 150.0
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def headers(method: str, name: str | None = None) -> dict[str, str]:
    h = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    if name:
        h["Mcp-Name"] = name
    return h


class Rpc:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url, self.next_id = client, url, 0

    async def __call__(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": method,
            "params": {**params, "_meta": META},
        }
        r = await self.client.post(self.url, json=body, headers=headers(method, params.get("name")))
        r.raise_for_status()
        reply: dict[str, Any] = r.json()
        assert "result" in reply, reply
        return reply

    async def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        result: dict[str, Any] = (await self("tools/call", {"name": name, "arguments": arguments}))[
            "result"
        ]
        assert not result.get("isError"), result
        return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=8)
    args = parser.parse_args()
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
                idle = await latencies(rpc, args.n)
                seconds = 600
                long_cell = asyncio.create_task(
                    rpc.tool(
                        "run_python_code",
                        session_id="s0",
                        code=f"import time\nfor _ in range({seconds * 10}): time.sleep(0.1)",
                    )
                )
                await rpc.tool("run_python_code", session_id="s1", code="x = 2")  # it has started
                busy = await latencies(rpc, args.n)
                assert not long_cell.done(), "the long cell ended before the measurement did"
                await rpc.tool("interrupt_kernel", session_id="s0")
                await long_cell
    sys.stdout.write(f"while a cell runs in another session, n={args.n} each\n")
    for name in ("ping", "tools/list"):
        i50, b50, b95 = pct(idle[name], 0.5), pct(busy[name], 0.5), pct(busy[name], 0.95)
        verdict = "within" if b95 < PING_BUDGET_MS else "OVER"
        sys.stdout.write(
            f"  {name:10s} idle p50 {i50:6.2f} ms   busy p50 {b50:6.2f} ms p95 {b95:6.2f} ms   "
            f"ratio p50 {b50 / i50:.2f}x   budget {PING_BUDGET_MS:.0f} ms: {verdict}\n"
        )
    verdict = "within" if rss_sessions < RSS_BUDGET_MB else "OVER"
    sys.stdout.write(
        f"server RSS, kernels excluded: {rss_empty:.0f} MB with no session, "
        f"{rss_sessions:.0f} MB with {args.sessions} idle sessions "
        f"(budget {RSS_BUDGET_MB:.0f} MB: {verdict})\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
