"""One-command benchmark: `uv run python bench/run.py [--n 300]`.

Measures, in one run and interleaved call by call, the round trip of `x = 1`:
  1. bare jupyter_client: execute on an AsyncKernelClient, wait for the reply and the idle status;
  2. run_python_code over streamable HTTP with a minimal HTTP/1.1 client (one keep-alive socket,
     no client library), so the figure is the server's cost and not a client library's;
  3. the same with raw httpx JSON-RPC (2026-07-28 era, no handshake);
  4. the same with the FastMCP Client;
and prints p50/p95 for each, the ratios against (1), and where the time went: the CPU the
benchmark process spent per call (the client's own cost) and the CPU the server process spent
per call. Budget: ratio of p50 <= 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx
from fastmcp import Client
from jupyter_client.manager import AsyncKernelManager

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import plots
from bench.common import cpu_clock, jsonrpc_answer, load, pct, run_cell
from tests.servers import http_server

__all__ = ["CODE", "BareKernel", "MinimalHttp", "check_ok", "cpu_clock", "pct"]

CODE = "x = 1"


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
        # only this call's reply and idle status count: jupyter_client may leave its own
        # kernel_info_reply from wait_for_ready queued, which a loaded machine delivers late
        reply = await run_cell(self.kc, CODE)
        assert reply["content"]["status"] == "ok", reply


META: dict[str, object] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
HEADERS: dict[str, str] = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "run_python_code",
}


def call_body(
    request_id: int, tool: str = "run_python_code", arguments: dict[str, object] | None = None
) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": {"code": CODE} if arguments is None else arguments,
            "_meta": META,
        },
    }


def check_ok(payload: dict[str, object]) -> None:
    result = payload.get("result")
    assert isinstance(result, dict), payload
    assert result["structuredContent"]["status"] == "ok", result


class RawHttp:
    """run_python_code as raw JSON-RPC over httpx, 2026-07-28 era (no handshake)."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self.next_id = 0

    async def once(self) -> None:
        self.next_id += 1
        r = await self.client.post(self.url, json=call_body(self.next_id), headers=HEADERS)
        assert r.status_code == 200, r.text
        check_ok(jsonrpc_answer(r.content, r.headers.get("content-type", ""), self.next_id))


class MinimalHttp:
    """The same request written by hand on one keep-alive socket: the client costs almost nothing,
    so what remains over the bare round trip is the server's cost.

    The server closes a connection left idle past its keep-alive (uvicorn: 5 s), as happens while
    a benchmark starts kernels between runs: after `IDLE_S` without a call, the next one opens a
    new connection first."""

    IDLE_S = 4.0

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path
        self.next_id = 0
        self.last_used = 0.0

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.last_used = time.monotonic()

    async def _close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def once(self) -> None:
        check_ok(await self.call("run_python_code", {"code": CODE}))

    async def call(self, tool: str, arguments: dict[str, object]) -> dict[str, object]:
        """One tools/call; the JSON-RPC response."""
        self.next_id += 1
        body = json.dumps(call_body(self.next_id, tool, arguments)).encode()
        head = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in {**HEADERS, "Mcp-Name": tool}.items()),
        ]
        if time.monotonic() - self.last_used > self.IDLE_S:
            await self._close()
            await self._connect()
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status, headers = self._parse_head(await self.reader.readuntil(b"\r\n\r\n"))
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        else:
            assert headers.get("transfer-encoding") == "chunked", headers
            payload = await self._read_chunked()
        assert status == 200, payload
        self.last_used = time.monotonic()
        return jsonrpc_answer(payload, headers.get("content-type", ""), self.next_id)

    @staticmethod
    def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])


@dataclass
class Samples:
    wall_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0


async def interleaved(
    n: int, warmup: int, calls: dict[str, Callable[[], Awaitable[object]]], server_pid: int
) -> dict[str, Samples]:
    """Round-robin over the paths so drift and noise hit each of them alike.

    Beside the wall time, each call's CPU is counted: this process's (the client's side) and the
    server process's."""
    server_clock = cpu_clock(server_pid)
    samples = {name: Samples() for name in calls}
    names = list(calls)
    for i in range(warmup + n):
        # rotate the order each round: whatever the previous call leaves running (a kernel still
        # finishing its cell, a server tearing a request down) then falls on every path alike
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            call = calls[name]
            server_before = server_clock()
            cpu = time.process_time()
            start = time.perf_counter()
            await call()
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            server_cpu = server_clock() - server_before
            if i >= warmup:
                s = samples[name]
                s.wall_ms.append(wall * 1000)
                s.client_cpu_s += cpu
                s.server_cpu_s += server_cpu
    return samples


def report(name: str, samples: Samples, base: Samples | None) -> dict[str, float | str]:
    n = len(samples.wall_ms)
    row: dict[str, float | str] = {
        "path": name,
        "p50_ms": round(pct(samples.wall_ms, 0.5), 2),
        "p95_ms": round(pct(samples.wall_ms, 0.95), 2),
        "mean_ms": round(statistics.fmean(samples.wall_ms), 2),
        "client_cpu_ms": round(samples.client_cpu_s * 1000 / n, 2),
    }
    if base is not None:
        row["server_cpu_ms"] = round(samples.server_cpu_s * 1000 / n, 2)
        row["ratio_p50"] = round(pct(samples.wall_ms, 0.5) / pct(base.wall_ms, 0.5), 2)
        row["ratio_p95"] = round(pct(samples.wall_ms, 0.95) / pct(base.wall_ms, 0.95), 2)
    return row


LABELS = {
    "bare": "bare jupyter_client",
    "minimal": "run_python_code, minimal HTTP client",
    "raw": "run_python_code, raw httpx",
    "fastmcp": "run_python_code, FastMCP Client",
}
PLOT_LABELS = {
    "bare": "bare jupyter_client",
    "minimal": "minimal HTTP client",
    "raw": "raw httpx",
    "fastmcp": "FastMCP Client",
}


def write_table(
    samples: dict[str, Samples], n: int, warmup: int, heading: str
) -> list[dict[str, float | str]]:
    bare = samples["bare"]
    rows = [
        report(LABELS[name], s, None if name == "bare" else bare) for name, s in samples.items()
    ]
    width = max(len(str(r["path"])) for r in rows)
    out = sys.stdout
    out.write(f"x = 1 round trip over streamable HTTP, n={n} (warmup {warmup})   [{heading}]\n")
    out.write(
        f"{'':{width}}  {'p50':>8}  {'p95':>8}  {'ratio p50':>9}  {'ratio p95':>9}  "
        f"{'client CPU':>10}  {'server CPU':>10}\n"
    )
    for r in rows:
        ratios = (
            f"{r['ratio_p50']:>8.2f}x  {r['ratio_p95']:>8.2f}x"
            if "ratio_p50" in r
            else f"{'':>9}  {'':>9}"
        )
        server_cpu = f"{r['server_cpu_ms']:>7.2f} ms" if "server_cpu_ms" in r else ""
        out.write(
            f"{str(r['path']).ljust(width)}  {r['p50_ms']:>5.2f} ms  {r['p95_ms']:>5.2f} ms  "
            f"{ratios}  {r['client_cpu_ms']:>7.2f} ms  {server_cpu:>10}\n"
        )
    out.flush()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="calls per path in each run")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    parser.add_argument(
        "--plot",
        type=Path,
        nargs="?",
        const=plots.DEFAULT_PATHS["latency"],
        help=f"draw the latency distributions as PNG (default {plots.DEFAULT_PATHS['latency']})",
    )
    args = parser.parse_args()
    runs: list[dict[str, object]] = []
    pooled: dict[str, list[float]] = {name: [] for name in LABELS}
    ratios_p50: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        with http_server(ws, "--log-level", "WARNING") as server:
            async with (
                BareKernel() as bare_kernel,
                MinimalHttp(server.url) as minimal,
                Client(server.url) as client,
                httpx.AsyncClient(timeout=60) as http,
            ):
                raw_http = RawHttp(server.url, http)

                async def fastmcp_once() -> None:
                    res = await client.call_tool("run_python_code", {"code": CODE})
                    assert res.structured_content
                    assert res.structured_content["status"] == "ok"

                calls: dict[str, Callable[[], Awaitable[object]]] = {
                    "bare": bare_kernel.once,
                    "minimal": minimal.once,
                    "raw": raw_http.once,
                    "fastmcp": fastmcp_once,
                }
                for run in range(1, args.repeat + 1):
                    before = load()
                    samples = await interleaved(args.n, args.warmup, calls, server.process.pid)
                    heading = f"run {run}/{args.repeat}, before {before}, after {load()}"
                    rows = write_table(samples, args.n, args.warmup, heading)
                    runs.append(
                        {"run": run, "load_before": before, "load_after": load(), "rows": rows}
                    )
                    for r in rows:
                        if "ratio_p50" in r:
                            ratios_p50.setdefault(str(r["path"]), []).append(float(r["ratio_p50"]))
                    for name, s in samples.items():
                        pooled[name].extend(s.wall_ms)
    out = sys.stdout
    out.write(
        "client CPU: this process's CPU per call (the client library's own cost); server CPU: the "
        "server process's CPU per call (kernels excluded). Budget: ratio p50 <= 1.5.\n"
    )
    for name in ("minimal", "raw", "fastmcp"):
        ratios = ratios_p50[LABELS[name]]
        out.write(
            f"{LABELS[name]}: ratio p50 over the runs "
            + ", ".join(f"{x:.2f}x" for x in ratios)
            + "\n"
        )
    if args.plot is not None:
        path = plots.latency(
            {PLOT_LABELS[name]: values for name, values in pooled.items()},
            args.plot,
            title=f"x = 1 round trip over streamable HTTP, {args.repeat} runs pooled",
        )
        out.write(f"plot: {path}\n")
    out.write(json.dumps(runs) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
