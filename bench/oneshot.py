"""One-command benchmark: `uv run python bench/oneshot.py [--n 30] [--burst 20] [--repeat 3]`.

Measures, in one run, against one server over its REST API (raw httpx, `POST /execute`):
  1. `execute_python` (a fresh kernel from the warm pool, discarded afterwards) against
     `run_python_code` on a warm session, interleaved call by call, the same code each time;
     before each call the benchmark waits until the pool has a kernel ready again (steady
     state, as bench/pool.py does; so neither call shares the CPU with the refill a one-shot
     call starts). Budget: one-shot p50 within 1.5x of the warm p50.
  2. `--burst` one-shot calls back to back, without waiting, for each pool size in `--pools`:
     whether the pool keeps up (it refills in the background; a call that finds it empty
     waits for a kernel to start).
Both are measured `--repeat` times, each run printed with the load average.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import load
from tests.servers import http_server

BUDGET = 1.5
CODE = 'print("Hello from MCP!")'


def call(client: httpx.Client, base: str, name: str, **arguments: Any) -> dict[str, Any]:
    response = client.post(f"{base}/execute", json={"name": name, "arguments": arguments})
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def timed(client: httpx.Client, base: str, name: str, **arguments: Any) -> float:
    started = time.perf_counter()
    result = call(client, base, name, **arguments)
    elapsed = (time.perf_counter() - started) * 1000
    assert result["status"] == "ok", result
    return elapsed


def pool_ready(client: httpx.Client, base: str, size: int) -> None:
    deadline = time.monotonic() + 120
    while call(client, base, "get_kernel_health")["pool"]["ready"] < size:
        assert time.monotonic() < deadline, "the pool did not refill within 120 s"
        time.sleep(0.05)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def interleaved(workspace: Path, n: int) -> tuple[list[float], list[float]]:
    oneshot: list[float] = []
    warm: list[float] = []
    with (
        http_server(workspace, "--kernel-pool-size", "1") as server,
        httpx.Client(timeout=120) as client,
    ):
        base = server.base
        call(client, base, "run_python_code", code="pass")  # the warm session
        for _ in range(3):  # warm up both paths
            pool_ready(client, base, 1)
            timed(client, base, "execute_python", code=CODE)
            timed(client, base, "run_python_code", code=CODE)
        for _ in range(n):
            pool_ready(client, base, 1)
            oneshot.append(timed(client, base, "execute_python", code=CODE))
            pool_ready(client, base, 1)  # the refill and the old kernel's end are past
            warm.append(timed(client, base, "run_python_code", code=CODE))
    return oneshot, warm


def burst(workspace: Path, pool: int, count: int) -> list[float]:
    with (
        http_server(workspace, "--kernel-pool-size", str(pool)) as server,
        httpx.Client(timeout=120) as client,
    ):
        pool_ready(client, server.base, pool)
        return [timed(client, server.base, "execute_python", code=CODE) for _ in range(count)]


def run_once(root: Path, args: argparse.Namespace, title: str) -> None:
    (root / "a").mkdir()
    before = load()
    oneshot, warm = interleaved(root / "a", args.n)
    after = load()
    bursts = {}
    for pool in (int(p) for p in args.pools.split(",")):
        (root / f"b{pool}").mkdir()
        bursts[pool] = burst(root / f"b{pool}", pool, args.burst)
    one_p50, warm_p50 = statistics.median(oneshot), statistics.median(warm)
    print(title)
    print(
        f"POST /execute, {args.n} interleaved pairs, the pool refilled before each call (ms)   "
        f"[before {before}, after {after}]"
    )
    print(f"  run_python_code, warm session: p50 {warm_p50:7.1f}   p95 {_p(warm, 0.95):7.1f}")
    print(f"  execute_python, one-shot:      p50 {one_p50:7.1f}   p95 {_p(oneshot, 0.95):7.1f}")
    ratio = one_p50 / warm_p50
    verdict = "within" if ratio <= BUDGET else "OVER"
    print(f"  ratio one-shot/warm (p50): {ratio:.2f}x -> {verdict} budget ({BUDGET}x)")
    for pool, times in bursts.items():
        shown = " ".join(f"{t:.0f}" for t in times)
        print(
            f"{args.burst} one-shot calls back to back, pool {pool}: p50 {statistics.median(times):.0f}"
            f"  p95 {_p(times, 0.95):.0f}  max {max(times):.0f}  total {sum(times) / 1000:.1f} s"
        )
        print(f"  each (ms): {shown}")
    print(f"  [{load()} after the bursts]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="interleaved pairs of calls")
    parser.add_argument("--burst", type=int, default=20, help="one-shot calls back to back")
    parser.add_argument("--pools", default="1,4", help="pool sizes for the burst")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    args = parser.parse_args()
    for run in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            run_once(Path(tmp), args, f"run {run}/{args.repeat}")


if __name__ == "__main__":
    main()
