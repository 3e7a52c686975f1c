"""One-command benchmark: `uv run python bench/scale.py [--sessions 1,2,4,8,16,32,64] [--plot]`.

How the server holds up as sessions are added: for each count of concurrent sessions, each
session its own kernel (created before the point is measured, in batches, on a server started
with the warm pool and the session limit set for the largest count), one raw httpx JSON-RPC
caller per session runs `run_python_code("x = 1")` back to back for `--seconds`, all at once: by
default the minimal HTTP/1.1 client of `bench/run.py` (one keep-alive socket per session, about
0.2 ms of CPU per call), so that the benchmark's own clients, on the same cores, take as little as
they can of what is measured; `--client httpx` uses raw httpx JSON-RPC (1.5 to 8 ms per call).
For each point, `--repeat` runs (each printed with the load average): cells/s over all sessions,
p50/p95 per call; then the server's RSS and its kernels' (the server process and all its
descendants, apart) with exactly that many sessions, and per session (over the same server
with no session, its warm pool filled). Prints a table, writes JSON (`--json`), draws the curve
(`--plot`). Budget: at least 150 cells/s from 8 to 64 sessions.

64 sandboxed kernels take about 5 GB; `--sessions 1,2,4,8` is a quick run.
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import plots
from bench.common import Message, Rpc, cpu_clock, load, machine, pct
from bench.run import MinimalHttp
from tests.servers import http_server

CODE = "x = 1"
BUDGET_CELLS_PER_S = 150.0
BUDGET_FROM_SESSIONS = 8
MB = 2**20


@dataclass
class Memory:
    server_mb: float
    kernels_rss_mb: float  # every descendant of the server (kernels, their sandboxes)
    kernels_uss_mb: float  # the same, pages of their own only
    processes: int


@dataclass
class Run:
    cells: int
    seconds: float
    p50_ms: float
    p95_ms: float
    load: str
    server_cpu_ms: float = 0.0  # per cell: the server process, its kernels, this process
    kernels_cpu_ms: float = 0.0
    client_cpu_ms: float = 0.0

    @property
    def cells_per_s(self) -> float:
        return self.cells / self.seconds


@dataclass
class Point:
    sessions: int
    runs: list[Run] = field(default_factory=list)
    memory: Memory | None = None
    boot_s: float = 0.0  # creating the sessions this point added

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(run, attr) for run in self.runs))


def memory(server_pid: int) -> Memory:
    server = psutil.Process(server_pid)
    rss = uss = 0
    children = server.children(recursive=True)
    for child in children:
        try:
            info = child.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        uss += info.uss
    return Memory(server.memory_info().rss / MB, rss / MB, uss / MB, len(children))


class Caller(Protocol):
    async def tool(self, name: str, **arguments: Any) -> Message: ...


class MinimalRpc:
    """A tools/call over the minimal client's own keep-alive socket (`bench/run.py`)."""

    def __init__(self, http: MinimalHttp) -> None:
        self.http = http

    async def tool(self, name: str, **arguments: Any) -> Message:
        reply = await self.http.call(name, arguments)
        result = reply["result"]
        assert isinstance(result, dict), reply
        assert not result.get("isError"), result
        return result


async def callers(
    kind: str, count: int, client: httpx.AsyncClient, url: str, stack: contextlib.AsyncExitStack
) -> list[Caller]:
    """`count` callers of `kind`, each with a connection of its own (closed with `stack`)."""
    if kind == "httpx":
        return [Rpc(client, url) for _ in range(count)]
    return [MinimalRpc(await stack.enter_async_context(MinimalHttp(url))) for _ in range(count)]


async def pool_ready(rpc: Rpc, size: int, limit_s: float = 300.0) -> None:
    """Until the warm pool is full again (its refill would otherwise share the CPU)."""
    deadline = time.monotonic() + limit_s
    while True:
        health = (await rpc.tool("get_kernel_health"))["structuredContent"]
        if health["pool"]["ready"] >= size:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the warm pool did not refill within {limit_s:g} s: {health}")
        await asyncio.sleep(0.1)


async def add_sessions(rpc: Rpc, first: int, last: int, batch: int) -> float:
    """Create sessions s<first>..s<last - 1>, `batch` at a time, each with a first cell run;
    seconds taken."""
    began = time.perf_counter()

    async def one(i: int) -> None:
        await rpc.tool("create_session", session_id=f"s{i}")
        result = await rpc.tool("run_python_code", session_id=f"s{i}", code="x = 0")
        assert result["structuredContent"]["status"] == "ok", result

    for start in range(first, last, batch):
        await asyncio.gather(*(one(i) for i in range(start, min(last, start + batch))))
    return time.perf_counter() - began


def kernels_cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def measure(rpcs: Sequence[Caller], seconds: float, warmup: int, server_pid: int) -> Run:
    """Each session runs cells back to back for `seconds`, all at once; beside the latencies,
    the CPU each cell cost the server process, its kernels and this process (the clients)."""

    async def cell(rpc: Caller, sid: str) -> None:
        result = await rpc.tool("run_python_code", session_id=sid, code=CODE)
        assert result["structuredContent"]["status"] == "ok", result

    async def warm(rpc: Caller, sid: str) -> None:
        for _ in range(warmup):
            await cell(rpc, sid)

    await asyncio.gather(*(warm(rpc, f"s{i}") for i, rpc in enumerate(rpcs)))
    times: list[float] = []
    server_clock = cpu_clock(server_pid)
    kernels = psutil.Process(server_pid).children(recursive=True)
    cpu = (server_clock(), kernels_cpu_s(kernels), time.process_time())
    began = time.perf_counter()
    stop_at = began + seconds

    async def worker(rpc: Caller, sid: str) -> None:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            await cell(rpc, sid)
            times.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(worker(rpc, f"s{i}") for i, rpc in enumerate(rpcs)))
    elapsed = time.perf_counter() - began
    n = len(times)
    server_s, kernels_s, client_s = (
        server_clock() - cpu[0],
        kernels_cpu_s(kernels) - cpu[1],
        time.process_time() - cpu[2],
    )
    return Run(
        n,
        elapsed,
        pct(times, 0.5),
        pct(times, 0.95),
        load(),
        server_cpu_ms=server_s * 1000 / n,
        kernels_cpu_ms=kernels_s * 1000 / n,
        client_cpu_ms=client_s * 1000 / n,
    )


async def scale(args: argparse.Namespace, counts: list[int]) -> tuple[Memory, list[Point]]:
    top = counts[-1]
    out = sys.stdout
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        server_args = ["--log-level", "WARNING", "--kernel-pool-size", str(args.pool)]
        server_args += ["--max-sessions", str(top + 1), "--min-free-memory-mb", "0"]
        with http_server(ws, *server_args, startup_timeout_s=120) as server:
            limits = httpx.Limits(max_connections=top + 8, max_keepalive_connections=top + 8)
            async with httpx.AsyncClient(timeout=300, limits=limits) as client:
                admin = Rpc(client, server.url)
                await pool_ready(admin, args.pool)
                baseline = memory(server.process.pid)
                out.write(
                    f"no session, warm pool of {args.pool}: server {baseline.server_mb:.0f} MB, "
                    f"kernels {baseline.kernels_rss_mb:.0f} MB RSS   [{load()}]\n"
                )
                points: list[Point] = []
                have = 0
                for count in counts:
                    point = Point(count)
                    point.boot_s = await add_sessions(admin, have, count, args.batch)
                    have = count
                    await pool_ready(admin, args.pool)
                    async with contextlib.AsyncExitStack() as stack:
                        rpcs = await callers(args.client, count, client, server.url, stack)
                        for run in range(1, args.repeat + 1):
                            result = await measure(
                                rpcs, args.seconds, args.warmup, server.process.pid
                            )
                            point.runs.append(result)
                            out.write(
                                f"{count:3d} sessions, run {run}/{args.repeat}: "
                                f"{result.cells_per_s:6.1f} cells/s  p50 {result.p50_ms:6.1f} ms"
                                f"  p95 {result.p95_ms:6.1f} ms  ({result.cells} cells; CPU per "
                                f"cell: server {result.server_cpu_ms:.1f} ms, kernels "
                                f"{result.kernels_cpu_ms:.1f} ms, clients "
                                f"{result.client_cpu_ms:.1f} ms)   [{result.load}]\n"
                            )
                            out.flush()
                    point.memory = memory(server.process.pid)
                    points.append(point)
    return baseline, points


def table(baseline: Memory, points: list[Point]) -> list[dict[str, Any]]:
    out = sys.stdout
    out.write(
        f"\n{'sessions':>8} {'cells/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'server MB':>9} "
        f"{'kernels MB':>10} {'MB/session':>10} {'own MB/s.':>9} {'boot s':>7} "
        f"{'CPU ms/cell: server':>19} {'kernels':>7} {'clients':>7}\n"
    )
    rows = []
    for p in points:
        assert p.memory is not None
        m = p.memory
        per_session = (m.kernels_rss_mb - baseline.kernels_rss_mb) / p.sessions
        own = (m.kernels_uss_mb - baseline.kernels_uss_mb) / p.sessions
        server_per = (m.server_mb - baseline.server_mb) / p.sessions
        row = {
            "sessions": p.sessions,
            "cells_per_s": round(p.median("cells_per_s"), 1),
            "p50_ms": round(p.median("p50_ms"), 2),
            "p95_ms": round(p.median("p95_ms"), 2),
            "server_rss_mb": round(m.server_mb, 1),
            "server_rss_per_session_mb": round(server_per, 2),
            "kernels_rss_mb": round(m.kernels_rss_mb, 1),
            "kernel_rss_per_session_mb": round(per_session, 1),
            "kernel_uss_per_session_mb": round(own, 1),
            "processes": m.processes,
            "boot_s": round(p.boot_s, 1),
            "server_cpu_ms_per_cell": round(p.median("server_cpu_ms"), 2),
            "kernels_cpu_ms_per_cell": round(p.median("kernels_cpu_ms"), 2),
            "client_cpu_ms_per_cell": round(p.median("client_cpu_ms"), 2),
            "runs": [{**asdict(r), "cells_per_s": round(r.cells_per_s, 1)} for r in p.runs],
        }
        rows.append(row)
        out.write(
            f"{p.sessions:>8} {row['cells_per_s']:>8.1f} {row['p50_ms']:>7.1f} "
            f"{row['p95_ms']:>7.1f} {m.server_mb:>9.0f} {m.kernels_rss_mb:>10.0f} "
            f"{per_session:>10.1f} {own:>9.1f} {p.boot_s:>7.1f} "
            f"{row['server_cpu_ms_per_cell']:>19.2f} {row['kernels_cpu_ms_per_cell']:>7.2f} "
            f"{row['client_cpu_ms_per_cell']:>7.2f}\n"
        )
    out.write(
        "cells/s, p50, p95: the median of the runs; server MB: the server process's RSS; kernels "
        "MB: its descendants' RSS; MB/session: their RSS over the server with no session, per "
        "session (own MB/s.: pages of their own, USS); boot s: creating that point's new "
        "sessions; CPU ms/cell: the CPU each cell cost the server process, its kernels and the "
        "benchmark's clients (the median of the runs).\n"
    )
    held = [p for p in points if p.sessions >= BUDGET_FROM_SESSIONS]
    if held:
        worst = min(held, key=lambda p: p.median("cells_per_s"))
        rate = worst.median("cells_per_s")
        verdict = "within" if rate >= BUDGET_CELLS_PER_S else "UNDER"
        out.write(
            f"budget: >= {BUDGET_CELLS_PER_S:g} cells/s from {BUDGET_FROM_SESSIONS} sessions: "
            f"lowest {rate:.1f} at {worst.sessions} ({verdict})\n"
        )
    return rows


def draw(summary: dict[str, Any], path: Path, repeat: int) -> None:
    curve = [
        plots.ScalePoint(r["sessions"], r["cells_per_s"], r["p50_ms"], r["p95_ms"])
        for r in summary["points"]
    ]
    written = plots.scale(
        curve,
        path,
        title=f"x = 1 across concurrent sessions (median of {repeat} runs per point)",
        budget_cells_per_s=BUDGET_CELLS_PER_S,
        machine=summary["machine"],
    )
    sys.stdout.write(f"plot: {written}\n")


def counts_arg(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sessions takes counts separated by commas, such as 1,2,4,8; got {text!r}"
        ) from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"--sessions counts must be 1 or more; got {text!r}")
    return counts


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=counts_arg, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="each run of each point")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point")
    parser.add_argument("--warmup", type=int, default=2, help="cells per session before a run")
    parser.add_argument("--pool", type=int, default=2, help="the server's warm pool size")
    parser.add_argument("--batch", type=int, default=4, help="sessions created at once")
    parser.add_argument(
        "--client",
        choices=["minimal", "httpx"],
        default="minimal",
        help="the callers: the minimal HTTP/1.1 client (default) or raw httpx JSON-RPC",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: draw --plot from the figures a run wrote with --json",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        nargs="?",
        const=plots.DEFAULT_PATHS["scale"],
        help=f"draw the curve as PNG (default {plots.DEFAULT_PATHS['scale']})",
    )
    args = parser.parse_args()
    if args.from_json is not None:
        summary = json.loads(args.from_json.read_text())
        draw(summary, args.plot or plots.DEFAULT_PATHS["scale"], summary["repeat"])
        return
    began = load()
    baseline, points = await scale(args, args.sessions)
    rows = table(baseline, points)
    summary = {
        "machine": f"{machine()} (at the start: {began})",
        "repeat": args.repeat,
        "seconds": args.seconds,
        "client": args.client,
        "baseline": asdict(baseline),
        "points": rows,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        sys.stdout.write(f"json: {args.json}\n")
    if args.plot is not None:
        draw(summary, args.plot, args.repeat)
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
