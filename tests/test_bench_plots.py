"""bench/plots.py draws each figure as a PNG from the samples it is given, bench/common.py
reads only a request's own reply (from a real kernel's channels, and from a JSON-RPC body), and
bench/asgi_floor.py (the floor row of bench/layers.py) runs real cells."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager
from PIL import Image

from bench import plots
from bench.asgi_floor import floor_server
from bench.common import jsonrpc_answer, run_cell
from bench.run import MinimalHttp
from tests.servers import free_port

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MACHINE = "2 cores, load 1.00 1.00 1.00"  # fixed, so the same samples give the same file


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's header, after checking its signature; then the whole
    file decoded, so a truncated or corrupt image fails too."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    with Image.open(path) as image:
        image.load()
        assert image.size == (width, height)
    return int(width), int(height)


def latencies(seed: int) -> dict[str, list[float]]:
    r = random.Random(seed)
    return {
        "bare jupyter_client": [r.lognormvariate(2.0, 0.2) for _ in range(300)],
        "minimal HTTP client": [r.lognormvariate(2.3, 0.2) for _ in range(300)],
        "raw httpx": [r.lognormvariate(2.4, 0.25) for _ in range(300)],
        "FastMCP Client": [r.lognormvariate(2.6, 0.3) for _ in range(300)],
    }


def test_the_latency_plot_is_a_png_of_the_set_size(tmp_path: Path) -> None:
    path = plots.latency(latencies(1), tmp_path / "latency.png", machine=MACHINE)
    assert png_size(path) == plots.SIZE_PX
    assert path.stat().st_size < 100_000


@pytest.mark.parametrize("growth", [2.5, 0.01], ids=["latency-over-decades", "flat-latency"])
def test_the_scale_plot_is_a_png_of_the_set_size(tmp_path: Path, growth: float) -> None:
    points = [
        plots.ScalePoint(n, 90.0 + 40 * n**0.3, 8.0 + growth * n, 12.0 + growth * 2 * n)
        for n in (1, 2, 4, 8, 16, 32, 64)
    ]
    path = plots.scale(points, tmp_path / "deeper" / "scale.png", machine=MACHINE)
    assert png_size(path) == plots.SIZE_PX
    assert path.stat().st_size < 100_000


def test_the_cold_start_plot_is_a_png_of_the_set_size(tmp_path: Path) -> None:
    r = random.Random(2)
    samples = {
        "bare kernel + first cell": [r.uniform(0.7, 0.9) for _ in range(15)],
        "stdio, raw JSON-RPC": [r.uniform(1.1, 1.4) for _ in range(15)],
        "stdio, FastMCP Client": [r.uniform(1.4, 1.8) for _ in range(15)],
    }
    path = plots.cold_start(samples, tmp_path / "cold.png", machine=MACHINE)
    assert png_size(path) == plots.SIZE_PX
    assert path.stat().st_size < 100_000


def test_the_same_samples_draw_the_same_file(tmp_path: Path) -> None:
    first = plots.latency(latencies(3), tmp_path / "a.png", machine=MACHINE)
    second = plots.latency(latencies(3), tmp_path / "b.png", machine=MACHINE)
    assert first.read_bytes() == second.read_bytes()


def test_a_path_without_samples_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        plots.latency({"bare": [1.0], "ours": []}, tmp_path / "x.png", machine=MACHINE)
    with pytest.raises(ValueError, match="no point"):
        plots.scale([], tmp_path / "y.png", machine=MACHINE)
    assert not list(tmp_path.iterdir())


def test_a_streamed_answer_is_found_among_other_events() -> None:
    events = [
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}},
        {"jsonrpc": "2.0", "id": 6, "result": {"other": True}},
        {"jsonrpc": "2.0", "id": 7, "result": {"mine": True}},
    ]
    body = b"".join(
        b"event: message\r\ndata: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events
    )
    assert jsonrpc_answer(body, "text/event-stream", 7)["result"] == {"mine": True}
    with pytest.raises(AssertionError, match="no answer to request 8"):
        jsonrpc_answer(body, "text/event-stream", 8)
    with pytest.raises(AssertionError, match="another request"):
        jsonrpc_answer(json.dumps(events[1]).encode(), "application/json", 7)


@pytest.mark.kernel
@pytest.mark.anyio
async def test_the_bare_round_trip_skips_a_reply_left_queued() -> None:
    """kernel_info_replies nobody read (jupyter_client's wait_for_ready leaves some, and one is
    asked for here) come first on the shell channel; the round trip skips them and returns its
    own execute_reply."""
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        stale_id = kc.kernel_info()
        skipped: list[dict[str, object]] = []
        reply = await run_cell(kc, "x = 1", timeout_s=30, skipped=skipped)
        assert reply["msg_type"] == "execute_reply"
        assert reply["content"]["status"] == "ok"
        # ours, and any wait_for_ready left behind (on this machine it leaves some)
        assert {m["msg_type"] for m in skipped} == {"kernel_info_reply"}
        assert skipped[-1]["parent_header"]["msg_id"] == stale_id  # type: ignore[index]
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


@pytest.mark.kernel
@pytest.mark.anyio
async def test_the_asgi_floor_runs_code_through_the_execution_service(tmp_path: Path) -> None:
    """bench/layers.py's row 4: the floor app answers a tools/call with the cell's real result
    (state kept from one call to the next, so the kernel really ran both)."""
    with floor_server(tmp_path, free_port()) as (url, process):
        async with MinimalHttp(url) as client:
            await client.call("run_python_code", {"code": "y = 6 * 7"})
            answer = await client.call("run_python_code", {"code": "y"})
        assert process.poll() is None
    structured = answer["result"]["structuredContent"]  # type: ignore[index]
    assert structured["status"] == "ok", structured
    assert structured["result"] == "42", structured
