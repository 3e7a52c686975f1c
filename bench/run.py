"""One-command benchmark: `uv run python bench/run.py [--n 300]`.

Measures, in one run and interleaved call by call, the round trip of `x = 1`:
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
from typing import ClassVar

import httpx
from fastmcp import Client
from jupyter_client.manager import AsyncKernelManager
from typing_extensions import Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import http_server

CODE = "x = 1"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class BareKernel:
    """A bare jupyter_client round trip: execute, wait for the reply and the idle status."""

    async def __aenter__(self) -> Self:
        self.km = AsyncKernelManager(kernel_name="python3")
        await self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kc.stop_channels()
        await self.km.shutdown_kernel(now=True)

    async def once(self) -> None:
        msg_id = self.kc.execute(CODE)
        reply = await self.kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        while True:
            msg = await self.kc.get_iopub_msg(timeout=30)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return


class RawHttp:
    """run_python_code as raw JSON-RPC over httpx, 2026-07-28 era (no handshake)."""

    META: ClassVar[dict[str, object]] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    HEADERS: ClassVar[dict[str, str]] = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "run_python_code",
    }

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self.next_id = 0

    async def once(self) -> None:
        self.next_id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "tools/call",
            "params": {"name": "run_python_code", "arguments": {"code": CODE}, "_meta": self.META},
        }
        r = await self.client.post(self.url, json=body, headers=self.HEADERS)
        assert r.status_code == 200
        assert '"status":"ok"' in r.text.replace(" ", "")


async def interleaved(
    n: int, warmup: int, calls: dict[str, Callable[[], Awaitable[object]]]
) -> dict[str, list[float]]:
    """Round-robin over the paths so drift and noise hit each of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + n):
        for name, call in calls.items():
            start = time.perf_counter()
            await call()
            if i >= warmup:
                samples[name].append((time.perf_counter() - start) * 1000)
    return samples


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
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        with http_server(ws, "--log-level", "WARNING") as server:
            async with (
                BareKernel() as bare_kernel,
                Client(server.url) as client,
                httpx.AsyncClient(timeout=60) as http,
            ):
                raw_http = RawHttp(server.url, http)

                async def fastmcp_once() -> None:
                    res = await client.call_tool("run_python_code", {"code": CODE})
                    assert res.structured_content
                    assert res.structured_content["status"] == "ok"

                samples = await interleaved(
                    args.n,
                    args.warmup,
                    {
                        "bare": bare_kernel.once,
                        "fastmcp": fastmcp_once,
                        "raw": raw_http.once,
                    },
                )
    bare, fast, raw = samples["bare"], samples["fastmcp"], samples["raw"]
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
