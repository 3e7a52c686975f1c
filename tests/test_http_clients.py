"""What real HTTP clients send and expect: older protocol versions, OAuth-first clients, header
values with surrounding spaces, log notifications.

The server runs in this process under uvicorn (httptools, as in production) on a loopback port;
the clients are raw sockets and httpx, the FastMCP Client and the MCP SDK's client."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server, http_app
from tests.servers import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


@asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[str]:
    """The server's HTTP app under uvicorn in this event loop; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            http_app(create_server(config), config),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
        )
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(60):
            while not server.started:
                await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


def modern_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def raw_post(base: str, headers: list[str], body: dict[str, Any]) -> tuple[int, str]:
    """POST `body` to /mcp over a plain socket, with `headers` sent byte for byte (httpx refuses
    a header value with a trailing space); returns the status and the body."""
    host, port = base.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = [
        "POST /mcp HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Accept: {ACCEPT}",
        f"Content-Length: {len(data)}",
        "Connection: close",
        *headers,
    ]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode()


# -------------------------------------------------------------------- header values with spaces


@pytest.mark.parametrize(
    "padded",
    ["Mcp-Name: ping ", "Mcp-Method: tools/call ", f"MCP-Protocol-Version: {MODERN} "],
    ids=["Mcp-Name", "Mcp-Method", "MCP-Protocol-Version"],
)
async def test_mcp_headers_with_a_trailing_space_are_accepted(
    config: ServerConfig, padded: str
) -> None:
    headers = {
        "mcp-name": "Mcp-Name: ping",
        "mcp-method": "Mcp-Method: tools/call",
        "mcp-protocol-version": f"MCP-Protocol-Version: {MODERN}",
    }
    headers[padded.split(":")[0].lower()] = padded
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ping", "arguments": {}, "_meta": modern_meta()},
    }
    async with serving(config) as base:
        status, text = await anyio.to_thread.run_sync(raw_post, base, list(headers.values()), body)
    assert status == 200, text
    assert json.loads(text)["result"]["structuredContent"]["ok"] is True


# ------------------------------------------------------------------------- OAuth-first clients

TOKEN = "s3cret"
DISCOVERY = [
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
]


async def test_oauth_discovery_and_registration_get_404_with_how_to_send_the_token(
    config: ServerConfig,
) -> None:
    registration = {"redirect_uris": ["http://127.0.0.1:33418/"], "client_name": "an editor"}
    async with serving(replace(config, auth_token=TOKEN)) as base, httpx.AsyncClient() as http:
        discovery = [(await http.get(base + path)).status_code for path in DISCOVERY]
        registered = await http.post(base + "/register", json=registration)
    assert discovery == [404] * len(DISCOVERY)
    assert registered.status_code == 404
    assert registered.json()["error"] == "invalid_request"
    description = registered.json()["error_description"]
    assert description.startswith("This server does not use OAuth")
    assert '--header "Authorization: Bearer <token>"' in description


async def test_a_401_names_an_error_only_when_a_credential_came(config: ServerConfig) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ping", "arguments": {}, "_meta": modern_meta()},
    }
    headers = {
        "Accept": ACCEPT,
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "ping",
    }
    async with serving(replace(config, auth_token=TOKEN)) as base, httpx.AsyncClient() as http:
        missing = await http.post(base + "/mcp", json=body, headers=headers)
        wrong = await http.post(
            base + "/mcp", json=body, headers={**headers, "Authorization": "Bearer nope"}
        )
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == 'Bearer realm="python-mcp-server"'
    assert wrong.headers["www-authenticate"] == (
        'Bearer realm="python-mcp-server", error="invalid_token"'
    )
    assert missing.json()["error"]["message"].startswith(
        "Unauthorized: this server needs its token"
    )


@pytest.mark.filterwarnings("ignore:Using in-memory token storage")
async def test_a_client_that_tries_oauth_first_fails_at_once_with_how_to_send_the_token(
    config: ServerConfig,
) -> None:
    """FastMCP's OAuth client runs the MCP SDK's flow, as editors do: discovery, then dynamic
    client registration. It must end there, with our message, before any browser opens."""
    from fastmcp import Client

    async with serving(replace(config, auth_token=TOKEN)) as base:
        with (
            anyio.fail_after(30),
            pytest.raises(RuntimeError, match="does not use OAuth") as failed,
        ):
            async with Client(base + "/mcp", auth="oauth") as client:
                await client.ping()
    assert "Authorization: Bearer <token>" in str(failed.value)


async def test_the_mcp_sdk_client_sends_the_token_as_the_readme_shows(config: ServerConfig) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = httpx2.Timeout(30, read=300)
    async with (
        serving(replace(config, auth_token=TOKEN)) as base,
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(base + "/mcp", http_client=http)) as client,
    ):
        res = await client.call_tool("ping", {})
    assert res.structured_content is not None
    assert res.structured_content["ok"] is True


# ------------------------------------------------------------- clients of older protocol versions

SPILL = "print('x' * 500)"  # past max_output_chars: the full text goes to a file, linked


def handshake_session(http: httpx.Client, url: str, version: str) -> dict[str, str]:
    """`initialize` at `version` and `notifications/initialized`; the headers of later requests."""
    init = http.post(
        url,
        headers={"Accept": ACCEPT},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "an older client", "version": "0"},
            },
        },
    )
    assert rpc_result(init)["protocolVersion"] == version
    headers = {"Accept": ACCEPT, "Mcp-Session-Id": init.headers["mcp-session-id"]}
    if version >= "2025-06-18":
        headers["MCP-Protocol-Version"] = version
    done = http.post(
        url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert done.status_code == 202
    return headers


def rpc_result(response: httpx.Response) -> dict[str, Any]:
    """The result of the JSON-RPC answer in a JSON or event-stream reply."""
    if response.headers["content-type"].startswith("application/json"):
        answer = response.json()
    else:
        events = [
            json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
        ]
        answer = next(event for event in events if "id" in event)
    assert "result" in answer, answer
    return dict(answer["result"])


def call_at(url: str, version: str) -> dict[str, Any]:
    with httpx.Client(timeout=60) as http:
        headers = handshake_session(http, url, version)
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "run_python_code", "arguments": {"code": SPILL}},
        }
        return rpc_result(http.post(url, headers=headers, json=call))


@pytest.mark.kernel
@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26"])
async def test_clients_before_2025_06_18_get_links_as_text(
    config: ServerConfig, version: str
) -> None:
    async with serving(replace(config, max_output_chars=100)) as base:
        result = await anyio.to_thread.run_sync(call_at, base + "/mcp", version)
    types = [block["type"] for block in result["content"]]
    uri = result["structuredContent"]["output_files"][0]
    assert uri.startswith("kernel://")
    assert types == ["text", "text"]
    assert uri in result["content"][1]["text"]


@pytest.mark.kernel
async def test_clients_from_2025_06_18_get_resource_links(config: ServerConfig) -> None:
    async with serving(replace(config, max_output_chars=100)) as base:
        result = await anyio.to_thread.run_sync(call_at, base + "/mcp", "2025-06-18")
    link = result["content"][-1]
    assert link["type"] == "resource_link"
    assert link["uri"] == result["structuredContent"]["output_files"][0]


# ------------------------------------------------------------------------------ log messages

LONG_PRINT = "print('x' * 500)"  # over max_output_chars=100: the server notes the cut
OVER_BUDGET = "stdout was 501 characters, over the budget of 100"


def log_text(message: Any) -> str:
    data = message.data
    return str(data.get("msg") if isinstance(data, dict) else data)


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_the_servers_notes_about_a_call_reach_the_fastmcp_log_handler(
    config: ServerConfig, mode: str
) -> None:
    from fastmcp import Client

    received: list[Any] = []

    async def on_log(message: Any) -> None:
        received.append(message)

    async with (
        serving(replace(config, max_output_chars=100)) as base,
        Client(base + "/mcp", log_handler=on_log, mode=mode) as client,
    ):
        res = await client.call_tool("run_python_code", {"code": LONG_PRINT})
    assert res.structured_content is not None
    assert OVER_BUDGET in res.structured_content["message"]
    notes = [(m.level, m.logger, log_text(m)) for m in received]
    assert len(notes) == 1, notes
    level, logger, text = notes[0]
    assert (level, logger) == ("warning", "python-mcp-server")
    assert text.startswith(OVER_BUDGET)


@pytest.mark.kernel
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # setLevel
async def test_log_messages_follow_the_level_a_2025_session_set(config: ServerConfig) -> None:
    from fastmcp import Client

    received: list[Any] = []

    async def on_log(message: Any) -> None:
        received.append(message)

    async with (
        serving(replace(config, max_output_chars=100)) as base,
        Client(base + "/mcp", log_handler=on_log, mode="legacy") as client,
    ):
        await client.set_logging_level("error")
        await client.call_tool("run_python_code", {"code": LONG_PRINT})
        quiet = len(received)
        await client.set_logging_level("warning")
        await client.call_tool("run_python_code", {"code": LONG_PRINT})
    assert quiet == 0
    assert [m.level for m in received] == ["warning"]


@pytest.mark.kernel
@pytest.mark.parametrize(("level", "expected"), [("error", 0), ("warning", 1), (None, 0)])
async def test_log_messages_follow_the_level_a_2026_request_asks_for(
    config: ServerConfig, level: str | None, expected: int
) -> None:
    meta = modern_meta()
    if level is not None:
        meta["io.modelcontextprotocol/logLevel"] = level
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "run_python_code", "arguments": {"code": LONG_PRINT}, "_meta": meta},
    }
    headers = {
        "Accept": ACCEPT,
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "run_python_code",
    }
    async with (
        serving(replace(config, max_output_chars=100)) as base,
        httpx.AsyncClient(timeout=60) as http,
    ):
        response = await http.post(base + "/mcp", json=body, headers=headers)
    lines = [
        json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
    ]
    logs = [event for event in lines if event.get("method") == "notifications/message"]
    assert len(logs) == expected, response.text
    assert all(log["params"]["level"] == "warning" for log in logs)
    assert OVER_BUDGET in rpc_result(response)["structuredContent"]["message"]
