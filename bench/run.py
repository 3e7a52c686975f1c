"""One-command benchmark: `uv run python bench/run.py [--n 200]`.

Measures, in one run, the round trip of `x = 1`:
  1. bare jupyter_client: execute on an AsyncKernelClient, wait for the reply and the idle status;
  2. run_python_code over streamable HTTP with the FastMCP Client (modern, stateless era);
  3. run_python_code over streamable HTTP with raw httpx JSON-RPC (modern era);
and prints p50/p95 for each and the ratios against (1). Budget: ratio of p50 <= 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from fastmcp import Client
from jupyter_client.manager import AsyncKernelManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import http_server

CODE = "x = 1"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(n: int, warmup: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def bare_jupyter(n: int, warmup: int) -> list[float]:
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)

    async def once() -> None:
        msg_id = kc.execute(CODE)
        reply = await kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        while True:
            msg = await kc.get_iopub_msg(timeout=30)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return

    try:
        return await timed(n, warmup, once)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


async def fastmcp_client(url: str, n: int, warmup: int) -> list[float]:
    async with Client(url) as client:

        async def once() -> None:
            res = await client.call_tool("run_python_code", {"code": CODE})
            assert res.structured_content
            assert res.structured_content["status"] == "ok"

        return await timed(n, warmup, once)


async def raw_httpx(url: str, n: int, warmup: int) -> list[float]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "run_python_code",
    }
    async with httpx.AsyncClient(timeout=60) as client:
        counter = iter(range(1, 10**9))

        async def once() -> None:
            body = {
                "jsonrpc": "2.0",
                "id": next(counter),
                "method": "tools/call",
                "params": {"name": "run_python_code", "arguments": {"code": CODE}, "_meta": meta},
            }
            r = await client.post(url, json=body, headers=headers)
            assert r.status_code == 200
            assert '"status":"ok"' in r.text.replace(" ", "")

        return await timed(n, warmup, once)


def report(name: str, samples: list[float], base: list[float] | None) -> dict[str, float | str]:
    row: dict[str, float | str] = {
        "path": name,
        "p50_ms": round(pct(samples, 0.5), 2),
        "p95_ms": round(pct(samples, 0.95), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }
    if base is not None:
        row["ratio_p50"] = round(pct(samples, 0.5) / pct(base, 0.5), 2)
        row["ratio_p95"] = round(pct(samples, 0.95) / pct(base, 0.95), 2)
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    bare = await bare_jupyter(args.n, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        with http_server(ws, "--log-level", "WARNING") as server:
            fast = await fastmcp_client(server.url, args.n, args.warmup)
            raw = await raw_httpx(server.url, args.n, args.warmup)
    rows = [
        report("bare jupyter_client", bare, None),
        report("run_python_code, FastMCP Client, HTTP", fast, bare),
        report("run_python_code, raw httpx, HTTP", raw, bare),
    ]
    width = max(len(str(r["path"])) for r in rows)
    sys.stdout.write(f"x = 1 round trip, n={args.n} (warmup {args.warmup})\n")
    for r in rows:
        extra = f"  ratio p50 {r['ratio_p50']}x p95 {r['ratio_p95']}x" if "ratio_p50" in r else ""
        sys.stdout.write(
            f"{str(r['path']).ljust(width)}  p50 {r['p50_ms']:7.2f} ms  p95 {r['p95_ms']:7.2f} ms{extra}\n"
        )
    sys.stdout.write(json.dumps(rows) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
