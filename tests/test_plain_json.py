"""Stateless-era calls that cannot stream are answered as plain JSON, and keep what the SDK's
streaming path gives: cancellation when the client goes away, pings while a long call is silent.

The server runs in this process under uvicorn on a loopback port, so the keepalive interval can
be short; the client is raw httpx."""

from __future__ import annotations

import asyncio
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


def answer(r: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer, sent plain or (a call slower than the keepalive) as the last event."""
    if r.headers["content-type"] == "text/event-stream":
        return events(r.text)[-1]
    body: dict[str, Any] = r.json()
    return body


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


async def test_a_client_that_only_accepts_json_gets_plain_json_even_for_a_long_call(
    config: ServerConfig,
) -> None:
    code = f"import time\nprint('working')\ntime.sleep({KEEPALIVE_S * 3})\n'done'"
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as client:
        long = await client.post(url, **call_request(code, accept="application/json"))
        streamed = call_request(code, progress_token="p2", accept="application/json")
        with_progress = await client.post(url, **streamed)
    for r in (long, with_progress):
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json()["result"]["structuredContent"]["result"] == "'done'"


async def test_requests_that_cannot_be_served_get_a_json_rpc_error_naming_the_fix(
    config: ServerConfig,
) -> None:
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as client:
        only_stream = await client.post(url, **call_request("1", accept="text/event-stream"))
        request = call_request("1")
        no_type = await client.post(
            url,
            content=json.dumps(request["json"]),
            headers=request["headers"],  # no Content-Type
        )
        stream_only = call_request("1", accept="text/event-stream")
        chunked = await client.post(  # no Content-Length: the body arrives in chunks
            url,
            content=_chunks(json.dumps(stream_only["json"]).encode()),
            headers={**stream_only["headers"], "Content-Type": "application/json"},
        )
        no_session = await client.post(  # neither a session nor the stateless-era header
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={"Accept": "application/json, text/event-stream"},
        )
        stateless = call_request("1")
        no_header = await client.post(  # a stateless-era request without its header
            url,
            json={**stateless["json"], "id": "call-9"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert only_stream.status_code == 406
    assert "'Accept: application/json, text/event-stream'" in error_message(only_stream)
    assert chunked.status_code == 406
    assert "'Accept: application/json, text/event-stream'" in error_message(chunked)
    assert no_type.status_code == 400
    assert "'Content-Type: application/json'" in error_message(no_type)
    assert no_session.status_code == 400
    message = error_message(no_session)
    assert "send 'initialize' first" in message
    assert "'MCP-Protocol-Version: 2026-07-28'" in message
    assert no_session.json()["id"] == 1  # the request's own id, so the client can match it
    assert no_header.status_code == 400
    assert no_header.json()["id"] == "call-9"
    assert error_message(no_header).startswith(
        "No MCP session, and no 'MCP-Protocol-Version' header: the request names protocol "
        f"'{MODERN}' in params._meta, so send it with the header 'MCP-Protocol-Version: {MODERN}'"
    )


@pytest.mark.parametrize("progress_token", [None, "p3"], ids=["plain", "with progress"])
async def test_an_http_1_0_client_gets_plain_json_for_a_long_call(
    config: ServerConfig, progress_token: str | None
) -> None:
    code = f"import time\nprint('working')\ntime.sleep({KEEPALIVE_S * 3})\n'done'"
    request = call_request(code, progress_token=progress_token)
    body = json.dumps(request["json"]).encode()
    async with serving(config) as url:
        port = int(url.split(":")[2].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = [
            "POST /mcp HTTP/1.0",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in request["headers"].items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        with anyio.fail_after(60):
            raw = await reader.read(-1)  # HTTP/1.0: the server closes after the answer
        writer.close()
    headers, _, payload = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower()
    assert json.loads(payload)["result"]["structuredContent"]["result"] == "'done'"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64):
        yield data[start : start + 64]


def error_message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


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
    # the kernel may still be settling after the interrupt: the answer can come as a stream
    assert answer(r)["result"]["structuredContent"]["result"] == "'answering'"
