"""Stateless-era calls that cannot stream are answered as plain JSON, and keep what the SDK's
streaming path gives: cancellation when the client goes away, pings while a long call is silent.

The server runs in this process under uvicorn on a loopback port, so the keepalive interval can
be short; the client is raw httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from python_mcp_server.config import ServerConfig
from python_mcp_server.middleware import PlainJsonCalls
from python_mcp_server.server import create_server, http_app
from tests.helpers import SLEEP_UNTIL_INTERRUPTED, wait_for_file
from tests.servers import free_port

pytestmark = [pytest.mark.kernel, pytest.mark.anyio, pytest.mark.timeout(90)]

MODERN = "2026-07-28"
KEEPALIVE_S = 0.3


@asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[str]:
    """The server's HTTP app under uvicorn in this event loop; yields the endpoint URL."""
    port = free_port()
    app = http_app(create_server(config), config, keepalive_s=KEEPALIVE_S)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(60):
            while not server.started:
                await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            server.should_exit = True


def call_request(
    code: str, *, progress_token: str | None = None, accept: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    if progress_token is not None:
        meta["progressToken"] = progress_token
    return {
        "json": {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "run_python_code", "arguments": {"code": code}, "_meta": meta},
        },
        "headers": {
            "Accept": accept or "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "tools/call",
            "Mcp-Name": "run_python_code",
        },
    }


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_the_installed_sdk_has_the_entry_point_the_plain_json_path_uses() -> None:
    # If an SDK upgrade moves it, calls still work (through the SDK's streaming path), but slower:
    # this test says so.
    assert PlainJsonCalls.available


async def test_a_quick_call_is_answered_as_plain_json(config: ServerConfig) -> None:
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as client:
        await client.post(url, **call_request("None"))  # starts the kernel (longer than a ping)
        r = await client.post(url, **call_request("6 * 7"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["id"] == 7
    assert body["result"]["structuredContent"]["result"] == "42"


async def test_a_long_silent_call_is_kept_alive_with_pings_and_still_answered(
    config: ServerConfig,
) -> None:
    code = f"import time\ntime.sleep({KEEPALIVE_S * 4})\n'done'"
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as client:
        r = await client.post(url, **call_request(code))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text.count(": ping") >= 2, r.text
    (answer,) = events(r.text)
    assert answer["id"] == 7
    assert answer["result"]["structuredContent"]["result"] == "'done'"


async def test_a_call_with_a_progress_token_still_streams_its_progress(
    config: ServerConfig,
) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)"
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as client:
        r = await client.post(url, **call_request(code, progress_token="p1"))
    assert r.headers["content-type"] == "text/event-stream"
    sent = events(r.text)
    progress = [e for e in sent if e.get("method") == "notifications/progress"]
    assert progress
    assert all(e["params"]["progressToken"] == "p1" for e in progress)
    assert sent[-1]["result"]["structuredContent"]["stdout"] == "0\n1\n2\n"


async def test_a_client_that_only_accepts_json_is_refused_as_the_sdk_does(
    config: ServerConfig,
) -> None:
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as client:
        r = await client.post(url, **call_request("1", accept="application/json"))
    assert r.status_code == 406


async def test_a_client_that_goes_away_interrupts_its_cell(
    config: ServerConfig, workspace: Path
) -> None:
    code = SLEEP_UNTIL_INTERRUPTED
    async with serving(config) as url:
        async with httpx.AsyncClient(timeout=60) as leaving, anyio.create_task_group() as tg:
            tg.start_soon(lambda: leaving.post(url, **call_request(code)))
            await wait_for_file(workspace / "started")
            tg.cancel_scope.cancel()  # closes the connection mid-call
        # well before the cell's own timeout (config.execution_timeout_s) would interrupt it
        await wait_for_file(workspace / "interrupted", timeout_s=config.execution_timeout_s / 3)
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(url, **call_request("'answering'"))
    assert r.json()["result"]["structuredContent"]["result"] == "'answering'"
