"""The table of 2025-11-25 MCP sessions cannot be filled from outside: raw JSON-RPC over httpx to
the server's HTTP app under uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from python_mcp_server.config import ServerConfig
from tests.servers import threaded_http_server
from tests.test_http import ACCEPT, LEGACY, modern_call, rpc_body

pytestmark = [pytest.mark.timeout(120)]

WAIT_S = 30.0
FLOOD = 300  # initialize calls that never make a call, far beyond the table's bound


def hold(name: str) -> str:
    """A cell that writes `started-<name>`, then holds its kernel until `release` appears."""
    return (
        "import os, time\n"
        f"open('started-{name}', 'w').close()\n"
        "while not os.path.exists('release'):\n"
        "    time.sleep(0.02)\n"
        "'released'"
    )


def initialize(client: httpx.Client, url: str) -> httpx.Response:
    return client.post(
        url,
        headers=ACCEPT,
        json={
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "raw-httpx", "version": "0"},
            },
        },
    )


def open_session(client: httpx.Client, url: str) -> str:
    """A new session, initialized as a client does: initialize, then the notification."""
    response = initialize(client, url)
    assert response.status_code == 200, response.text
    session_id = response.headers["mcp-session-id"]
    assert notify(client, url, session_id) == 202
    return session_id


def notify(client: httpx.Client, url: str, session_id: str) -> int:
    """Send `notifications/initialized` (not a call): 202 while the session lives, 404 after."""
    response = client.post(
        url,
        headers=_headers(session_id),
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
    )
    return response.status_code


def request(
    client: httpx.Client, url: str, session_id: str, method: str, params: dict[str, Any]
) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return client.post(url, headers=_headers(session_id), json=body)


def call_tool(
    client: httpx.Client, url: str, session_id: str, name: str, args: dict[str, Any]
) -> dict[str, Any]:
    response = request(client, url, session_id, "tools/call", {"name": name, "arguments": args})
    assert response.status_code == 200, response.text
    return dict(rpc_body(response)["result"])


def _headers(session_id: str) -> dict[str, str]:
    return {**ACCEPT, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": LEGACY}


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@contextmanager
def holding_cells(url: str, workspace: Path, count: int) -> Iterator[list[dict[str, Any]]]:
    """`count` MCP sessions, each with a cell running in a kernel session of its own (the first
    in `default`); on exit the cells are released. Yields the calls' results, filled on exit."""
    results: list[dict[str, Any]] = []
    kernels = ["default"] + [f"k{i}" for i in range(1, count)]
    with httpx.Client(timeout=WAIT_S * 2) as setup:  # stateless calls: no MCP session
        for kernel in kernels[1:]:
            created = modern_call(setup, url, 1, "create_session", {"session_id": kernel})
            assert rpc_body(created)["result"]["isError"] is False
        sessions = [open_session(setup, url) for _ in kernels]

    def run(session_id: str, kernel: str) -> None:
        with httpx.Client(timeout=WAIT_S * 2) as client:
            args = {"code": hold(kernel), "session_id": kernel}
            results.append(call_tool(client, url, session_id, "run_python_code", args))

    threads = [
        threading.Thread(target=run, args=pair, daemon=True)
        for pair in zip(sessions, kernels, strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        for kernel in kernels:
            _wait_for(workspace / f"started-{kernel}")
        yield results
    finally:
        (workspace / "release").touch()
        for thread in threads:
            thread.join(WAIT_S * 2)


@pytest.mark.kernel
@pytest.mark.slow
def test_a_flood_of_initialize_calls_neither_locks_newcomers_out_nor_ends_working_sessions(
    config: ServerConfig, workspace: Path
) -> None:
    bound = 8
    config = replace(config, max_mcp_sessions=bound)
    with threaded_http_server(config) as base, httpx.Client(timeout=WAIT_S) as client:
        url = f"{base}{config.path}"
        with holding_cells(url, workspace, 1) as held:
            regular = open_session(client, url)  # a client that called, then went idle
            assert request(client, url, regular, "tools/list", {}).status_code == 200
            flood = [initialize(client, url) for _ in range(FLOOD)]
            newcomer = open_session(client, url)
            ping = call_tool(client, url, newcomer, "ping", {})
            flooded_alive = sum(
                notify(client, url, response.headers["mcp-session-id"]) == 202 for response in flood
            )
            regular_after = request(client, url, regular, "tools/list", {})
        working = held[0]["structuredContent"]
    assert all(response.status_code == 200 for response in flood)
    assert ping["isError"] is False
    # the working session, the idle regular client and the newcomer hold three places
    assert flooded_alive <= bound - 3
    assert regular_after.status_code == 200
    assert working["status"] == "ok"
    assert working["result"] == "'released'"


@pytest.mark.kernel
@pytest.mark.slow
def test_when_every_session_is_serving_a_call_initialize_gets_a_clear_503(
    config: ServerConfig, workspace: Path
) -> None:
    config = replace(config, max_mcp_sessions=2)
    with threaded_http_server(config) as base, httpx.Client(timeout=WAIT_S) as client:
        url = f"{base}{config.path}"
        with holding_cells(url, workspace, 2):
            refused = initialize(client, url)
        after = initialize(client, url)
    assert refused.status_code == 503
    message = refused.json()["error"]["message"]
    assert "limit of 2 MCP sessions" in message
    assert "2026-07-28" in message
    assert after.status_code == 200


def test_a_session_that_makes_no_call_is_ended_sooner_than_one_that_did(
    config: ServerConfig,
) -> None:
    config = replace(config, mcp_session_unused_timeout_s=1.0)
    with threaded_http_server(config) as base, httpx.Client(timeout=WAIT_S) as client:
        url = f"{base}{config.path}"
        unused = open_session(client, url)
        used = open_session(client, url)
        assert request(client, url, used, "tools/list", {}).status_code == 200
        deadline = time.monotonic() + WAIT_S
        while notify(client, url, unused) != 404:
            assert time.monotonic() < deadline, "the unused session was never ended"
            time.sleep(0.1)
        used_after = request(client, url, used, "tools/list", {})
    assert used_after.status_code == 200
