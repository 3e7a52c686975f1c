"""One-command benchmark: `uv run python bench/gateway.py [--n 200] [--starts 5] [--repeat 3]`.

What running kernels on a Jupyter Kernel Gateway costs per call, measured in one run against
Kernel Gateway 3 on loopback (built and started as the tests do: tests/gateway.py), interleaved
call by call (the order rotates every round, after a warm-up), the round trip of `x = 1`:
  1. bare jupyter_client on a local kernel: execute, wait for the reply and the idle status;
  2. run_python_code over HTTP (bench/run.py's minimal client) on a server with local kernels;
  3. the same on a server with `--kernel-gateway-url` pointing at a gateway started with
     `deploy/gateway/nodelay_config.py` (TCP_NODELAY on its kernel websockets);
  4. the same on a server whose gateway runs without that file (Nagle's algorithm on);
  5. a bare websocket round trip to a kernel on the first gateway (no server): execute_request,
     wait for the reply and the idle status; in the legacy JSON protocol the server speaks, and
     in jupyter_server 2's v1 protocol (the gateway passes the kernel's frames through);
and prints p50/p95 for each, its ratios, and where the time went: the server's own timing of the
cell (its result's duration_ms: from sending the cell to the kernel to the result built), and the
CPU the server process and the gateway process spent per call (kernels excluded). Budget: the
gateway server's p50 over the local server's <= 1.5. Then kernel starts, local and gateway
alternately: a bare start to the first reply, and create_session (no warm pool, so a cold start)
on each server.

Local kernels run in the suite's sandbox mode (`PYTHON_MCP_SERVER_TEST_SANDBOX`, auto when
unset); a gateway's kernels are the gateway's own processes. Each figure is measured `--repeat`
times, the load average printed beside it: on a shared machine, compare runs with like loads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from jupyter_client.manager import AsyncKernelManager
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from python_mcp_server.kernels.gateway_client import (
    GatewayClient,
    GatewaySettings,
    Messages,
    decode,
    new_session,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import CODE, BareKernel, MinimalHttp, check_ok, cpu_clock, pct
from tests.conftest import sandbox_mode
from tests.gateway import NODELAY_CONFIG, KernelGateway, gateway_venv
from tests.servers import RunningServer, http_server

RATIO_BUDGET = 1.5
TOKEN_ENV = "PYTHON_MCP_SERVER_KERNEL_GATEWAY_TOKEN"
REPLY_TIMEOUT_S = 30.0


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


class NagleGateway(KernelGateway):
    """A Kernel Gateway started without deploy/gateway/nodelay_config.py: what you get from
    Kernel Gateway 3 out of the box."""

    def command(self) -> list[str]:
        return [arg for arg in super().command() if arg != f"--config={NODELAY_CONFIG}"]


@contextlib.contextmanager
def running(gateway: KernelGateway) -> Iterator[KernelGateway]:
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.close()


def on_gateway(
    workspace: Path, gateway: KernelGateway
) -> contextlib.AbstractContextManager[RunningServer]:
    """A server subprocess whose kernels run on `gateway` (the token from the environment)."""
    return http_server(
        workspace,
        "--log-level",
        "WARNING",
        "--kernel-gateway-url",
        gateway.url,
        env={TOKEN_ENV: gateway.token},
    )


V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


def v1_frame(channel: str, parts: list[bytes]) -> bytes:
    """A message in jupyter_server 2's v1 websocket protocol: a count and table of offsets (8-byte
    little-endian), the channel, then the message's parts as the kernel's ZMQ frames carry them."""
    name = channel.encode()
    offsets = [8 * (len(parts) + 3), 8 * (len(parts) + 3) + len(name)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    table = b"".join(n.to_bytes(8, "little") for n in (len(offsets), *offsets))
    return b"".join([table, name, *parts])


def v1_message(frame: bytes) -> dict[str, Any]:
    """A v1 frame's message, decoded as the legacy protocol's JSON form would be."""
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    offsets.append(len(frame))
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(count)]
    header, parent, metadata, content = (json.loads(part) for part in parts[1:5])
    return {
        "channel": parts[0].decode(),
        "header": header,
        "msg_type": header.get("msg_type"),
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
    }


class BareGatewayKernel:
    """A kernel on the gateway over its websocket, with no server: the REST start, the channels
    websocket (TCP_NODELAY on this end, as the server sets it), then execute_request and the
    wait for its reply and idle status.

    `v1`: speak jupyter_server 2's `v1.kernel.websocket.jupyter.org` protocol, in which the
    gateway passes the kernel's frames through; else the legacy JSON the server speaks (every
    gateway has it), in which the gateway checks, decodes and re-encodes each message."""

    def __init__(self, gateway: KernelGateway, *, v1: bool = False) -> None:
        self.settings = GatewaySettings(url=gateway.url, token=gateway.token)
        self.client = GatewayClient(self.settings)
        self.messages = Messages(new_session(), "bench")
        self.v1 = v1
        self.kernel_id: str | None = None
        self.ws: WebSocketClientConnection | None = None

    async def __aenter__(self) -> Self:
        self.kernel_id = await self.client.start_kernel({}, 60)
        self.ws = await self._open(self.kernel_id)
        deadline = time.monotonic() + 60
        while True:  # a kernel_info sent while the kernel starts can be lost: ask again
            msg_id = await self._send("kernel_info_request", {})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._until(msg_id, idle=False), 1.0)
                return self
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway's kernel did not answer kernel_info in 60 s")

    async def _open(self, kernel_id: str) -> WebSocketClientConnection:
        if not self.v1:  # the server's own code
            return await self.client.open_channels(kernel_id, self.messages.session)
        url = f"{self.settings.base.replace('http', 'ws', 1)}/api/kernels/{kernel_id}/channels"
        request = HTTPRequest(
            f"{url}?session_id={self.messages.session}", headers=self.settings.headers()
        )
        ws = await websocket_connect(request, subprotocols=[V1_PROTOCOL])
        assert ws.selected_subprotocol == V1_PROTOCOL, "the gateway has no v1 protocol"
        ws.protocol.stream.set_nodelay(True)  # type: ignore[union-attr]
        return ws

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.kernel_id is not None:
            await self.client.delete_kernel(self.kernel_id)
        await self.client.aclose()

    async def _send(self, msg_type: str, content: dict[str, object]) -> str:
        assert self.ws is not None
        msg_id, text = self.messages.request("shell", msg_type, content)
        if self.v1:
            msg = json.loads(text)
            parts = [json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata")]
            await self.ws.write_message(
                v1_frame("shell", [*parts, json.dumps(content).encode()]), binary=True
            )
        else:
            await self.ws.write_message(text)
        return msg_id

    async def _until(self, msg_id: str, *, idle: bool) -> dict[str, Any]:
        """Read until the reply to `msg_id` (and, with `idle`, its idle status); the reply."""
        assert self.ws is not None
        reply: dict[str, Any] | None = None
        settled = not idle
        while reply is None or not settled:
            frame = await self.ws.read_message()
            if frame is None:
                raise RuntimeError("the gateway closed the kernel's websocket")
            msg = v1_message(frame) if self.v1 and isinstance(frame, bytes) else decode(frame)
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if msg.get("channel") == "shell":
                reply = msg
            elif msg.get("msg_type") == "status":
                settled = settled or msg["content"]["execution_state"] == "idle"
        return reply

    async def once(self) -> None:
        content: dict[str, object] = {
            "code": CODE,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        msg_id = await self._send("execute_request", content)
        reply = await asyncio.wait_for(self._until(msg_id, idle=True), REPLY_TIMEOUT_S)
        assert reply["content"]["status"] == "ok", reply


def run_cell(client: MinimalHttp) -> Callable[[], Awaitable[float | None]]:
    """run_python_code `x = 1`; the result's duration_ms (the server's time from sending the cell
    to the kernel to the result built)."""

    async def call() -> float:
        answer = await client.call("run_python_code", {"code": CODE})
        check_ok(answer)
        result = answer["result"]
        assert isinstance(result, dict)
        return float(result["structuredContent"]["duration_ms"])

    return call


def bare_call(once: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[float | None]]:
    async def call() -> None:
        await once()

    return call


@dataclass
class Route:
    """One measured path: its call, and the processes whose CPU it is charged."""

    label: str
    call: Callable[[], Awaitable[float | None]]  # a server's own timing of the cell, in ms
    pids: dict[str, int] = field(default_factory=dict)  # "server", "gateway"


@dataclass
class Samples:
    wall_ms: list[float] = field(default_factory=list)
    cell_ms: list[float] = field(default_factory=list)  # submit to result, as the server timed it
    cpu_s: dict[str, float] = field(default_factory=dict)


async def interleaved(n: int, warmup: int, paths: dict[str, Route]) -> dict[str, Samples]:
    """Round-robin over the paths, rotating the order each round, so drift, noise and whatever
    the previous call leaves running fall on each alike. Beside the wall time, each call's CPU
    in the server and gateway processes it goes through, and the server's own timing of the cell
    (from sending it to the kernel to the result built)."""
    clocks = {
        name: {role: cpu_clock(pid) for role, pid in path.pids.items()}
        for name, path in paths.items()
    }
    samples = {name: Samples(cpu_s=dict.fromkeys(path.pids, 0.0)) for name, path in paths.items()}
    names = list(paths)
    for i in range(warmup + n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            before = {role: clock() for role, clock in clocks[name].items()}
            start = time.perf_counter()
            cell_ms = await paths[name].call()
            wall = time.perf_counter() - start
            if i >= warmup:
                s = samples[name]
                s.wall_ms.append(wall * 1000)
                if cell_ms is not None:
                    s.cell_ms.append(cell_ms)
                for role, clock in clocks[name].items():
                    s.cpu_s[role] += clock() - before[role]
    return samples


# ------------------------------------------------------------------------- kernel starts


async def bare_local_start() -> float:
    """jupyter_client: start a kernel and wait for its first kernel_info reply."""
    began = time.perf_counter()
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        return time.perf_counter() - began
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def bare_gateway_start(gateway: KernelGateway) -> Callable[[], Awaitable[float]]:
    """POST /api/kernels, open the websocket, wait for the first kernel_info reply."""

    async def start() -> float:
        began = time.perf_counter()
        async with BareGatewayKernel(gateway):
            return time.perf_counter() - began

    return start


def session_create(url: str, label: str) -> Callable[[], Awaitable[float]]:
    """create_session with no warm pool (a cold kernel start, the kernel-side extension loaded),
    timed; then delete_session, untimed. A connection of its own each time (the server closes
    one left idle past its keep-alive)."""
    count = 0

    async def create() -> float:
        nonlocal count
        count += 1
        sid = f"bench-{label}-{count}"
        async with MinimalHttp(url) as client:
            began = time.perf_counter()
            answer = await client.call("create_session", {"session_id": sid})
            elapsed = time.perf_counter() - began
            result = answer.get("result")
            assert isinstance(result, dict), answer
            assert not result.get("isError"), answer
            deleted = await client.call("delete_session", {"session_id": sid})
            assert isinstance(deleted.get("result"), dict), deleted
        return elapsed

    return create


async def starts(
    n: int, kinds: dict[str, Callable[[], Awaitable[float]]]
) -> dict[str, list[float]]:
    """`n` starts of each kind, alternating (the order rotates every round)."""
    times: dict[str, list[float]] = {name: [] for name in kinds}
    names = list(kinds)
    for i in range(n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(await kinds[name]())
    return times


# ------------------------------------------------------------------------------ report


def _ratio(a: list[float], b: list[float], q: float) -> float:
    return pct(a, q) / pct(b, q)


def write_calls(
    out: Any, samples: dict[str, Samples], paths: dict[str, Route], n: int, warmup: int, load: str
) -> dict[str, Any]:
    bare = samples["bare"].wall_ms
    width = max(len(p.label) for p in paths.values())
    out.write(f"x = 1 round trip, n={n} interleaved calls each (warmup {warmup})   [{load}]\n")
    out.write(
        f"{'':{width}}  {'p50':>8}  {'p95':>8}  {'/bare p50':>9}  {'cell p50':>8}  "
        f"{'server CPU':>10}  {'gateway CPU':>11}\n"
    )
    rows = []
    for name, path in paths.items():
        s = samples[name]
        per_call = {role: cpu * 1000 / len(s.wall_ms) for role, cpu in s.cpu_s.items()}
        row = {
            "path": name,
            "p50_ms": round(pct(s.wall_ms, 0.5), 2),
            "p95_ms": round(pct(s.wall_ms, 0.95), 2),
            "mean_ms": round(statistics.fmean(s.wall_ms), 2),
            "vs_bare_p50": round(_ratio(s.wall_ms, bare, 0.5), 2),
            **{f"{role}_cpu_ms": round(ms, 2) for role, ms in per_call.items()},
        }
        if s.cell_ms:
            row["cell_p50_ms"] = round(pct(s.cell_ms, 0.5), 2)
        rows.append(row)
        server = f"{per_call['server']:7.2f} ms" if "server" in per_call else ""
        gateway = f"{per_call['gateway']:8.2f} ms" if "gateway" in per_call else ""
        vs_bare = f"{row['vs_bare_p50']:8.2f}x" if name != "bare" else ""
        cell = f"{row['cell_p50_ms']:5.2f} ms" if s.cell_ms else ""
        out.write(
            f"{path.label.ljust(width)}  {row['p50_ms']:>5.2f} ms  {row['p95_ms']:>5.2f} ms  "
            f"{vs_bare:>9}  {cell:>8}  {server:>10}  {gateway:>11}\n"
        )
    local, gw, nagle = (samples[k].wall_ms for k in ("local", "gateway", "nagle"))
    ratio = _ratio(gw, local, 0.5)
    verdict = "PASS" if ratio <= RATIO_BUDGET else "FAIL"
    out.write(
        f"gateway server / local server: p50 {ratio:.2f}x, p95 {_ratio(gw, local, 0.95):.2f}x "
        f"-> {verdict} (budget p50 <= {RATIO_BUDGET}x)\n"
        f"without / with the TCP_NODELAY config: p50 {_ratio(nagle, gw, 0.5):.2f}x, "
        f"p95 {_ratio(nagle, gw, 0.95):.2f}x "
        f"({pct(nagle, 0.5) - pct(gw, 0.5):+.1f} ms per call at p50)\n"
        "cell: the server's own time from sending the cell to the kernel to the result built "
        "(duration_ms); server CPU / gateway CPU: that process's CPU per call (kernels "
        "excluded).\n"
    )
    return {
        "rows": rows,
        "gateway_vs_local_p50": round(ratio, 3),
        "verdict": verdict,
        "nagle_vs_nodelay_p50": round(_ratio(nagle, gw, 0.5), 3),
    }


def write_starts(
    out: Any, title: str, times: dict[str, list[float]], labels: dict[str, str], load: str
) -> dict[str, float]:
    n = len(next(iter(times.values())))
    out.write(f"{title}, {n} alternating each (s)   [{load}]\n")
    width = max(len(label) for label in labels.values())
    medians = {}
    for name, label in labels.items():
        medians[name] = round(statistics.median(times[name]), 3)
        out.write(
            f"  {label.ljust(width)}  p50 {medians[name]:6.3f}   "
            f"min {min(times[name]):6.3f}   max {max(times[name]):6.3f}\n"
        )
    return medians


# --------------------------------------------------------------------------------- main

LABELS = {
    "local": "local",
    "gateway": "gateway + TCP_NODELAY config",
    "nagle": "gateway without the config",
}


async def measure(args: argparse.Namespace, tmp: Path, venv: Path) -> None:
    out = sys.stdout
    workspaces = {name: tmp / name / "workspace" for name in ("local", "gateway", "nagle")}
    for ws in workspaces.values():
        ws.mkdir(parents=True)
    with (
        running(KernelGateway(venv, tmp / "kg-nodelay")) as nodelay_gw,
        running(NagleGateway(venv, tmp / "kg-nagle")) as nagle_gw,
        http_server(workspaces["local"], "--log-level", "WARNING") as local_srv,
        on_gateway(workspaces["gateway"], nodelay_gw) as gw_srv,
        on_gateway(workspaces["nagle"], nagle_gw) as nagle_srv,
    ):
        async with (
            BareKernel() as bare,
            BareGatewayKernel(nodelay_gw) as ws_bare,
            BareGatewayKernel(nodelay_gw, v1=True) as ws_v1,
            MinimalHttp(local_srv.url) as local,
            MinimalHttp(gw_srv.url) as gateway,
            MinimalHttp(nagle_srv.url) as nagle,
        ):
            gw_pid, nagle_pid = nodelay_gw.pid, nagle_gw.pid
            assert gw_pid is not None
            assert nagle_pid is not None
            paths = {
                "bare": Route("bare jupyter_client, local kernel", bare_call(bare.once)),
                "local": Route(
                    "server, local kernels", run_cell(local), {"server": local_srv.process.pid}
                ),
                "gateway": Route(
                    "server, gateway + TCP_NODELAY config",
                    run_cell(gateway),
                    {"server": gw_srv.process.pid, "gateway": gw_pid},
                ),
                "nagle": Route(
                    "server, gateway without the config",
                    run_cell(nagle),
                    {"server": nagle_srv.process.pid, "gateway": nagle_pid},
                ),
                "ws": Route(
                    "bare websocket, gateway + config", bare_call(ws_bare.once), {"gateway": gw_pid}
                ),
                "ws1": Route(
                    "the same, v1 websocket protocol", bare_call(ws_v1.once), {"gateway": gw_pid}
                ),
            }
            runs: list[dict[str, Any]] = []
            for run in range(1, args.repeat + 1):
                samples = await interleaved(args.n, args.warmup, paths)
                summary = write_calls(
                    out, samples, paths, args.n, args.warmup, f"run {run}/{args.repeat}, {_load()}"
                )
                out.flush()
                bare_kinds = {
                    "local": bare_local_start,
                    "gateway": bare_gateway_start(nodelay_gw),
                    "nagle": bare_gateway_start(nagle_gw),
                }
                bare_starts = await starts(args.starts, bare_kinds)
                bare_load = _load()
                urls = {"local": local_srv.url, "gateway": gw_srv.url, "nagle": nagle_srv.url}
                creates = await starts(
                    args.starts, {name: session_create(url, name) for name, url in urls.items()}
                )
                create_load = _load()
                summary["bare_start_p50_s"] = write_starts(
                    out,
                    "bare kernel start to first kernel_info reply (jupyter_client; REST + "
                    "websocket)",
                    bare_starts,
                    LABELS,
                    bare_load,
                )
                summary["create_session_p50_s"] = write_starts(
                    out,
                    "create_session, a cold start (no warm pool; the kernel-side extension loaded)",
                    creates,
                    LABELS,
                    create_load,
                )
                summary["run"] = run
                runs.append(summary)
                out.flush()
    out.write(json.dumps({"sandbox": sandbox_mode(), "runs": runs}) + "\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="x = 1 calls per path")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--starts", type=int, default=5, help="kernel starts per kind")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    args = parser.parse_args()
    venv = gateway_venv()
    with tempfile.TemporaryDirectory() as tmp:
        await measure(args, Path(tmp), venv)


if __name__ == "__main__":
    asyncio.run(main())
