"""One-command benchmark: `uv run python bench/figures.py [--n 5] [--repeat 3]`.

A 4000x3000 matplotlib figure (`plt.figure(figsize=(40, 30), dpi=100)`, `plt.show()`), measured
in one run and interleaved call by call:
  1. bare jupyter_client: execute on a kernel of its own, wait for the reply, the display_data
     PNG and the idle status;
  2. run_python_code over streamable HTTP with raw httpx JSON-RPC (2026-07-28 era, no handshake):
     the result must carry an image preview and a kernel:// link to the full PNG.
Each round takes a fresh bare kernel and a fresh session: the first figure (matplotlib imported
in the cell) is timed, then `--n` repeated figures, interleaved, the order alternating. Beside
each round: the server's RSS peak while it handled one figure call, above its RSS just before
the call (a thread polling psutil every 2 ms, and the process's own high-water mark, VmHWM,
reset before each call), the server's CPU per repeated call, and the load average. Budget: repeated figure p50 within 1.3x the bare kernel,
server peak under +30 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import run
from bench.common import load
from bench.run import HEADERS, META, cpu_clock
from tests.servers import http_server

CELL = (
    "import matplotlib.pyplot as plt\n"
    "fig = plt.figure(figsize=(40, 30), dpi=100)\n"
    "plt.plot(range(10))\n"
    "plt.show()"
)
RATIO_BUDGET = 1.3
RSS_BUDGET_MB = 30.0
MB = 1024 * 1024


class BareKernel(run.BareKernel):
    """A kernel of our own through jupyter_client, with ipykernel's inline backend (as ours)."""

    async def once(self) -> None:
        msg_id = self.kc.execute(CELL)
        png = 0

        async def reply() -> None:
            while True:
                msg = await self.kc.get_shell_msg(timeout=120)
                # skip what is not this call's (a late kernel_info_reply, say)
                if msg["parent_header"].get("msg_id") == msg_id:
                    assert msg["content"]["status"] == "ok", msg["content"]
                    return

        async def outputs() -> None:
            nonlocal png
            while True:
                msg = await self.kc.get_iopub_msg(timeout=120)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "display_data":
                    png += len(msg["content"]["data"].get("image/png", ""))
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return

        await asyncio.gather(reply(), outputs())
        assert png > 0, "the bare kernel sent no PNG"


class Peak:
    """The server's RSS peak during a call, above its RSS just before: sampled by a thread
    polling psutil, and read from VmHWM (reset first through /proc/<pid>/clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.process = psutil.Process(pid)
        self._stop = threading.Event()
        self.before = self.sampled = 0

    def _hwm_reset(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def _hwm(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> Self:
        self.hwm_ok = self._hwm_reset()
        self.before = self.sampled = self.process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.sampled = max(self.sampled, self.process.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.hwm = self._hwm() if self.hwm_ok else 0

    @property
    def sampled_mb(self) -> float:
        return (self.sampled - self.before) / MB

    @property
    def hwm_mb(self) -> float:
        return (self.hwm - self.before) / MB if self.hwm_ok else float("nan")


class Ours:
    """run_python_code with raw httpx JSON-RPC, in a session of its own."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self.next_id = 0
        self.session = ""

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": META},
        }
        r = await self.client.post(self.url, json=body, headers={**HEADERS, "Mcp-Name": tool})
        assert r.status_code == 200, r.text
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            # a call that outlasts the keepalive interval is answered as an event stream
            events = [line[5:] for line in r.text.splitlines() if line.startswith("data:")]
            answer = json.loads(events[-1])
        else:
            answer = r.json()
        result = answer["result"]
        assert not result.get("isError"), result
        return dict(result)

    async def new_session(self, name: str) -> None:
        await self.call("create_session", {"session_id": name})
        self.session = name

    async def close_session(self) -> None:
        await self.call("delete_session", {"session_id": self.session})

    async def once(self) -> None:
        result = await self.call("run_python_code", {"code": CELL, "session_id": self.session})
        structured = result["structuredContent"]
        assert structured["status"] == "ok", structured
        images = structured["images"]
        assert images, structured
        assert images[0]["uri"], structured
        assert any(c["type"] == "image" for c in result["content"]), "no preview in the content"


async def timed(call: Any) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def one_round(round_no: int, n: int, ours: Ours, pid: int) -> dict[str, float | str]:
    async with BareKernel() as bare:
        await ours.new_session(f"fig{round_no}-{os.getpid()}")
        peaks: list[tuple[float, float]] = []
        server_cpu: list[float] = []
        clock = cpu_clock(pid)

        async def ours_once() -> None:
            before = clock()
            with Peak(pid) as peak:
                await ours.once()
            server_cpu.append(clock() - before)
            peaks.append((peak.sampled_mb, peak.hwm_mb))

        try:
            # the first figure of a fresh kernel (matplotlib imported by the cell), then repeats
            order = [("bare", bare.once), ("ours", ours_once)]
            first: dict[str, float] = {}
            for name, call in order if round_no % 2 == 0 else order[::-1]:
                first[name] = await timed(call)
            repeated: dict[str, list[float]] = {"bare": [], "ours": []}
            for i in range(n):
                for name, call in order if i % 2 == 0 else order[::-1]:
                    repeated[name].append(await timed(call))
        finally:
            await ours.close_session()
    bare_p50 = statistics.median(repeated["bare"])
    ours_p50 = statistics.median(repeated["ours"])
    return {
        "first_bare_s": first["bare"],
        "first_ours_s": first["ours"],
        "first_ratio": first["ours"] / first["bare"],
        "bare_p50_s": bare_p50,
        "ours_p50_s": ours_p50,
        "ratio": ours_p50 / bare_p50,
        "server_cpu_ms": statistics.median(server_cpu[1:]) * 1000,
        "rss_first_mb": peaks[0][0],
        "rss_max_mb": max(p[0] for p in peaks),
        "hwm_first_mb": peaks[0][1],
        "hwm_max_mb": max(p[1] for p in peaks),
        "load": load(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5, help="repeated figures per round and path")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (fresh kernels each)")
    args = parser.parse_args()
    out = sys.stdout
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        with http_server(ws, "--log-level", "WARNING") as server:
            async with httpx.AsyncClient(timeout=300) as http:
                ours = Ours(server.url, http)
                for r in range(args.repeat):
                    row = await one_round(r, args.n, ours, server.process.pid)
                    rows.append(row)
                    out.write(
                        f"round {r + 1}: first figure ours {row['first_ours_s']:.2f} s, bare "
                        f"{row['first_bare_s']:.2f} s ({row['first_ratio']:.2f}x); repeated p50 "
                        f"ours {row['ours_p50_s']:.3f} s, bare {row['bare_p50_s']:.3f} s "
                        f"({row['ratio']:.2f}x), server CPU {row['server_cpu_ms']:.0f} ms per "
                        f"call; server RSS peak +{row['rss_max_mb']:.1f} MB "
                        f"sampled (first call +{row['rss_first_mb']:.1f}), VmHWM "
                        f"+{row['hwm_max_mb']:.1f} MB (first +{row['hwm_first_mb']:.1f}); "
                        f"{row['load']}\n"
                    )
                    out.flush()
    ratio = statistics.median(float(r["ratio"]) for r in rows)
    peak = max(max(float(r["rss_max_mb"]), float(r["hwm_max_mb"])) for r in rows)
    out.write(
        f"4000x3000 figure, n={args.n} x {args.repeat} rounds: repeated ratio p50 {ratio:.2f}x "
        f"(budget {RATIO_BUDGET}x), server RSS peak +{peak:.1f} MB (budget +{RSS_BUDGET_MB:.0f} "
        f"MB); {load()}\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
