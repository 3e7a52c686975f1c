"""The real server over streamable HTTP, driven with raw JSON-RPC in both protocol eras."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.helpers import IGNORES_INTERRUPTS, SLEEP_UNTIL_INTERRUPTED, start_cell, wait_for_file
from tests.servers import http_server

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(120)]

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = "2026-07-28"
LEGACY = "2025-11-25"


def rpc_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response in a JSON or SSE reply (the last `data:` event carrying an id)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return dict(response.json())
    found: dict[str, Any] | None = None
    for line in response.text.splitlines():
        if line.startswith("data:"):
            event = json.loads(line[5:])
            if "id" in event:
                found = event
    assert found is not None, response.text
    return found


def modern_call(
    client: httpx.Client,
    url: str,
    rid: int,
    name: str,
    args: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": args,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "raw-httpx", "version": "0"},
            },
        },
    }
    hdrs = {
        **ACCEPT,
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
        **(headers or {}),
    }
    return client.post(url, json=body, headers=hdrs)


def test_stateless_2026_requests_run_code_without_a_handshake(workspace: Path) -> None:
    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        first = rpc_body(modern_call(client, server.url, 1, "run_python_code", {"code": "x = 20"}))
        second = rpc_body(
            modern_call(client, server.url, 2, "run_python_code", {"code": "x * 2 + 2"})
        )
    assert first["result"]["structuredContent"]["status"] == "ok"
    assert second["result"]["structuredContent"]["result"] == "42"
    assert second["result"]["isError"] is False


def test_2025_handshake_session_runs_code_with_mcp_session_id(workspace: Path) -> None:
    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        init = client.post(
            server.url,
            headers=ACCEPT,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": LEGACY,
                    "capabilities": {},
                    "clientInfo": {"name": "raw-httpx", "version": "0"},
                },
            },
        )
        assert rpc_body(init)["result"]["protocolVersion"] == LEGACY
        sid = init.headers["mcp-session-id"]
        hdrs = {**ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY}
        note = client.post(
            server.url, headers=hdrs, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
        )
        assert note.status_code == 202
        listed = rpc_body(
            client.post(
                server.url, headers=hdrs, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            )
        )
        names = {tool["name"] for tool in listed["result"]["tools"]}
        call = rpc_body(
            client.post(
                server.url,
                headers=hdrs,
                json={
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {
                        "name": "run_python_code",
                        "arguments": {"code": "print('legacy ok')"},
                    },
                },
            )
        )
    assert {"run_python_code", "create_session", "list_sessions", "ping"} <= names
    assert call["result"]["structuredContent"]["stdout"] == "legacy ok\n"


def test_a_foreign_origin_is_refused_with_403(workspace: Path) -> None:
    with http_server(workspace) as server, httpx.Client(timeout=30) as client:
        response = modern_call(
            client, server.url, 1, "ping", {}, headers={"Origin": "http://evil.example"}
        )
    assert response.status_code == 403


def test_a_request_without_the_bearer_token_gets_401(workspace: Path) -> None:
    with http_server(workspace, "--auth-token", "s3cret") as server, httpx.Client(timeout=30) as c:
        missing = modern_call(c, server.url, 1, "ping", {})
        wrong = modern_call(c, server.url, 2, "ping", {}, headers={"Authorization": "Bearer nope"})
        right = modern_call(
            c, server.url, 3, "ping", {}, headers={"Authorization": "Bearer s3cret"}
        )
        health = c.get(f"{server.base}/health")
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.json()["error"]["message"].startswith(
        "Unauthorized: this server needs its token. Send 'Authorization: Bearer <token>'"
    )
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert rpc_body(right)["result"]["structuredContent"]["ok"] is True
    assert health.status_code == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_shuts_every_kernel_down(workspace: Path, signum: int) -> None:
    from tests.conftest import pid_alive

    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        modern_call(client, server.url, 1, "run_python_code", {"code": "1"})
        listed = rpc_body(modern_call(client, server.url, 2, "list_sessions", {}))
        kernel_pid = int(listed["result"]["structuredContent"]["sessions"][0]["kernel_pid"])
        assert pid_alive(kernel_pid)
        server.process.send_signal(signum)
        server.process.wait(30)
    assert not pid_alive(kernel_pid)


@pytest.mark.anyio
async def test_closing_the_http_stream_interrupts_the_kernel(workspace: Path) -> None:
    from fastmcp import Client

    code = SLEEP_UNTIL_INTERRUPTED
    with http_server(workspace) as server:
        async with Client(server.url) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "run_python_code", {"code": code})
                await wait_for_file(workspace / "started")
                tg.cancel_scope.cancel()
            await wait_for_file(workspace / "interrupted")
            after = await client.call_tool("run_python_code", {"code": "'answering'"})
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'answering'"


def test_an_oversized_request_gets_a_json_rpc_error_that_says_what_to_do(workspace: Path) -> None:
    big = "x" * 5_000_000
    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        response = modern_call(
            client, server.url, 1, "write_file", {"path": "a.txt", "content": big}
        )
        after = modern_call(client, server.url, 2, "ping", {})
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert message.startswith("The request is ")
    assert "write_file with append=true" in message
    assert after.status_code == 200


@pytest.mark.anyio
async def test_an_oversized_request_is_answered_to_async_and_chunked_senders(
    workspace: Path,
) -> None:
    from fastmcp import Client

    big = "x" * 5_000_000
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "write_file",
                "arguments": {"path": "a.txt", "content": big},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
    ).encode()
    headers = {
        **ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "write_file",
    }

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    with http_server(workspace) as server:
        async with httpx.AsyncClient(timeout=60) as client:
            declared = await client.post(server.url, content=body, headers=headers)
            chunked = await client.post(server.url, content=chunks(), headers=headers)
        async with Client(server.url) as mcp_client:
            with pytest.raises(Exception, match="write_file with append=true"):
                await mcp_client.call_tool("write_file", {"path": "a.txt", "content": big})
            still = await mcp_client.call_tool("ping", {})
    assert declared.status_code == chunked.status_code == 413
    assert declared.json()["error"]["message"].startswith("The request is 5000")
    assert chunked.json()["error"]["message"].startswith("The request is more than ")
    assert "write_file with append=true" in chunked.json()["error"]["message"]
    assert not (workspace / "a.txt").exists()
    assert still.structured_content is not None


def test_the_auth_token_does_not_reach_the_kernel(workspace: Path) -> None:
    env = {"PYTHON_MCP_SERVER_AUTH_TOKEN": "from-env"}
    auth = {"Authorization": "Bearer from-env"}
    with http_server(workspace, env=env) as server, httpx.Client(timeout=60) as client:
        code = "import os; os.environ.get('PYTHON_MCP_SERVER_AUTH_TOKEN', 'absent')"
        res = rpc_body(
            modern_call(client, server.url, 1, "run_python_code", {"code": code}, headers=auth)
        )
    assert res["result"]["structuredContent"]["result"] == "'absent'"


def test_a_cell_running_at_shutdown_is_interrupted_and_answered(workspace: Path) -> None:
    hold = "import time\nopen('started', 'w').close()\ntime.sleep(120)"
    data, log = _call_then_stop(workspace, hold, [signal.SIGTERM])
    assert data["status"] == "error"
    assert data["error"]["ename"] == "KeyboardInterrupt"
    assert data["message"].startswith("The server is shutting down, so this cell was interrupted")
    assert "Exception in ASGI application" not in log


def test_a_cell_that_ignores_the_interrupt_at_shutdown_is_still_answered(workspace: Path) -> None:
    data, log = _call_then_stop(workspace, IGNORES_INTERRUPTS, [signal.SIGTERM])
    assert data["status"] == "error"
    assert data["error"]["ename"] == "KernelDied"
    assert data["message"].startswith("The server is shutting down and this cell did not stop")
    assert "Exception in ASGI application" not in log


def test_one_ctrl_c_delivered_twice_still_lets_the_cell_finish(workspace: Path) -> None:
    """The terminal and `uv run` can both deliver one Ctrl-C: that must not skip the grace."""
    cleanup = (
        "import time\nopen('started', 'w').close()\n"
        "try:\n    time.sleep(120)\nexcept KeyboardInterrupt:\n"
        "    time.sleep(0.5)\n    print('cleaned up')"
    )
    data, _ = _call_then_stop(workspace, cleanup, [signal.SIGINT, signal.SIGINT])
    assert (data["status"], data["stdout"]) == ("ok", "cleaned up\n")


def _call_then_stop(
    workspace: Path, code: str, signals: list[signal.Signals]
) -> tuple[dict[str, Any], str]:
    """Start `code`, send `signals` once it runs, and return the call's result and the log."""
    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        answers: list[httpx.Response] = []

        def long_call() -> None:
            answers.append(modern_call(client, server.url, 1, "run_python_code", {"code": code}))

        caller = threading.Thread(target=long_call)
        caller.start()
        anyio.run(wait_for_file, workspace / "started")
        for signum in signals:
            server.process.send_signal(signum)
        caller.join(30)
        assert server.process.wait(30) == 0
        log = server.log_text()
    assert not caller.is_alive()
    assert answers, log
    return dict(rpc_body(answers[0])["result"]["structuredContent"]), log


@pytest.mark.anyio
async def test_the_fastmcp_client_connects_with_the_token_as_the_readme_shows(
    workspace: Path,
) -> None:
    from fastmcp import Client

    with http_server(workspace, "--auth-token", "s3cret") as server:
        async with Client(server.url, auth="s3cret") as client:
            res = await client.call_tool("run_python_code", {"code": "6 * 7"})
        with pytest.raises(Exception, match="Unauthorized: this server needs its token") as refused:
            async with Client(server.url, auth="wrong") as client:
                await client.ping()
    assert res.structured_content is not None
    assert res.structured_content["result"] == "42"
    assert "auth='<token>'" in str(refused.value)


HOLD = "import time\nopen('started', 'w').close()\ntime.sleep(120)"
SHUTTING_DOWN = "The server is shutting down, so this cell was interrupted"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_the_fastmcp_client_gets_the_answer_of_a_call_running_at_shutdown(
    workspace: Path, mode: str
) -> None:
    """The client lists the tools after the answer (to check it against the output schema, as it
    has not listed them yet) and a 2025-11-25 client ends its session: both must still work."""
    from fastmcp import Client

    with http_server(workspace) as server:
        async with Client(server.url, mode=mode) as client, anyio.create_task_group() as tg:
            results = start_cell(tg, client, {"code": HOLD})
            await wait_for_file(workspace / "started")
            server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    assert results, "the call got no answer"
    assert results[0]["error"]["ename"] == "KeyboardInterrupt"
    assert results[0]["message"].startswith(SHUTTING_DOWN)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_the_mcp_sdk_client_gets_the_answer_of_a_call_running_at_shutdown(
    workspace: Path, mode: str
) -> None:
    from mcp import Client

    answers: list[Any] = []

    async def long_call(client: Client) -> None:
        answers.append(await client.call_tool("run_python_code", {"code": HOLD}))

    with http_server(workspace) as server:
        async with Client(server.url, mode=mode) as client, anyio.create_task_group() as tg:
            tg.start_soon(long_call, client)
            await wait_for_file(workspace / "started")
            server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    assert answers, "the call got no answer"
    data = answers[0].structured_content
    assert data["error"]["ename"] == "KeyboardInterrupt"
    assert data["message"].startswith(SHUTTING_DOWN)
