"""What every benchmark shares: percentiles, the machine's load, and reading only one's own
replies (from a bare kernel's channels, or from a JSON-RPC response that may carry notifications).

A loaded machine delivers late what a quiet one delivers early: jupyter_client's
`wait_for_ready` can leave a `kernel_info_reply` queued on the shell channel, and a response to a
tools/call may carry notifications before its result. A benchmark that takes the first message
for its reply then measures, or asserts on, someone else's. Every bench path reads through these.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

Message = dict[str, Any]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg has them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load() -> str:
    """`load 1.23 0.98 0.75`: printed beside each figure, so runs compare at like loads."""
    return f"load {load_average()}"


def machine() -> str:
    """`2 cores, load 1.23 0.98 0.75`: the title line of a plot."""
    return f"{os.cpu_count() or 1} cores, {load()}"


async def own_reply(
    receive: Callable[[float], Awaitable[Message]],
    msg_id: str,
    timeout_s: float = 30.0,
    skipped: list[Message] | None = None,
) -> Message:
    """The first message from `receive` (a channel's `get_*_msg(timeout=...)`) whose parent is
    request `msg_id`; anything else (a stale reply another request left queued) is skipped, and
    kept in `skipped` when given. Raises TimeoutError when no such reply comes within
    `timeout_s` in all."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no reply to {msg_id} within {timeout_s:g} s")
        try:
            msg = await receive(left)
        except queue.Empty as exc:  # jupyter_client's timeout
            raise TimeoutError(f"no reply to {msg_id} within {timeout_s:g} s") from exc
        if (msg.get("parent_header") or {}).get("msg_id") == msg_id:
            return msg
        if skipped is not None:
            skipped.append(msg)


class KernelChannels(Protocol):
    """What `run_cell` needs of a jupyter_client AsyncKernelClient."""

    def execute(self, code: str) -> str: ...
    def get_shell_msg(self, timeout: float | None = None) -> Awaitable[Message]: ...
    def get_iopub_msg(self, timeout: float | None = None) -> Awaitable[Message]: ...


async def run_cell(
    kc: KernelChannels, code: str, timeout_s: float = 30.0, skipped: list[Message] | None = None
) -> Message:
    """A bare round trip: execute `code`, wait for its own execute_reply and its own idle status
    (skipping whatever else is queued; the shell channel's skipped messages kept in `skipped`
    when given); the reply."""
    msg_id = kc.execute(code)
    reply = await own_reply(lambda t: kc.get_shell_msg(timeout=t), msg_id, timeout_s, skipped)
    deadline = time.monotonic() + timeout_s
    while True:
        msg = await own_reply(
            lambda t: kc.get_iopub_msg(timeout=t), msg_id, deadline - time.monotonic()
        )
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return reply


def jsonrpc_answer(body: bytes, content_type: str, request_id: int) -> Message:
    """The JSON-RPC response to `request_id` in an HTTP body: plain JSON, or an event stream
    whose other events (notifications, another request's answer) are skipped."""
    if content_type.startswith("text/event-stream"):
        for line in body.splitlines():
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if isinstance(message, dict) and message.get("id") == request_id:
                    return message
        raise AssertionError(f"no answer to request {request_id} in the stream: {body[:500]!r}")
    message = json.loads(body)
    assert isinstance(message, dict), message
    assert message.get("id") == request_id, f"answer to another request: {message}"
    return message


META: dict[str, object] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def rpc_headers(method: str, name: str | None = None) -> dict[str, str]:
    """The headers of a 2026-07-28 era request (no handshake)."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    if name:
        headers["Mcp-Name"] = name
    return headers


class Rpc:
    """Raw JSON-RPC over httpx, 2026-07-28 era: each request's own answer, matched by its id."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url, self.next_id = client, url, 0

    async def __call__(self, method: str, params: dict[str, Any]) -> Message:
        self.next_id += 1
        request_id = self.next_id
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": method,
            "params": {**params, "_meta": META},
        }
        r = await self.client.post(
            self.url, json=body, headers=rpc_headers(method, params.get("name"))
        )
        r.raise_for_status()
        reply = jsonrpc_answer(r.content, r.headers.get("content-type", ""), request_id)
        assert "result" in reply, reply
        return reply

    async def tool(self, name: str, **arguments: Any) -> Message:
        """A tools/call's result; asserts it is not an error."""
        reply = await self("tools/call", {"name": name, "arguments": arguments})
        result: Message = reply["result"]
        assert not result.get("isError"), result
        return result


def cpu_clock(pid: int) -> Callable[[], float]:
    """Seconds of CPU that process `pid` has used so far: to the nanosecond from the scheduler's
    per-thread counters where Linux has them, else in clock ticks (coarse per call, but summed
    over every call they add up right)."""
    tasks = Path(f"/proc/{pid}/task")
    if Path(f"/proc/{pid}/schedstat").exists():

        def schedstat() -> float:
            total = 0
            for task in tasks.iterdir():
                with contextlib.suppress(OSError):  # a thread that just ended
                    total += int((task / "schedstat").read_text().split()[0])
            return total / 1e9

        return schedstat
    process = psutil.Process(pid)
    return lambda: sum(process.cpu_times()[:2])
