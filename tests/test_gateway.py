"""Kernels on a Jupyter Kernel Gateway (`--kernel-gateway-url`): servers that share one gateway
share its sessions, and the gateway failing is told and recovered from.

Every test runs real servers (in-process FastMCP, and HTTP subprocesses for the replicas) against
a real Kernel Gateway 3 the suite starts from its own venv (tests/gateway.py). The core session
and execution tests run on a gateway too: `PYTHON_MCP_SERVER_TEST_KERNELS=gateway uv run pytest
tests/test_execution.py tests/test_sessions.py`.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from mcp.types import TextContent

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.conftest import sandbox_mode
from tests.gateway import KernelGateway
from tests.helpers import call, error, wait_for_file
from tests.servers import http_server

pytestmark = [pytest.mark.anyio, pytest.mark.gateway]


def on_gateway(folder: Path, gateway: KernelGateway, **changes: Any) -> ServerConfig:
    """A server of its own (its own workspace) whose kernels run on `gateway`."""
    folder.mkdir(parents=True, exist_ok=True)
    made = ServerConfig(
        workspace_dir=folder,
        execution_timeout_s=30,
        kernel_pool_size=0,
        interrupt_grace_s=3,
        health_check_interval_s=0.5,
        sandbox=sandbox_mode(),
        kernel_gateway_url=gateway.url,
        kernel_gateway_token=gateway.token,
        kernel_gateway_connect_timeout_s=2,
        kernel_gateway_retries=1,
    )
    return dataclasses.replace(made, **changes)


async def told_text(client: Client[Any], tool: str, **args: Any) -> str:
    """What a call that met its session's end says: the tool's error, or (when the end came
    while the cell ran) the cell result's message."""
    res = await client.call_tool(tool, args, raise_on_error=False)
    if res.is_error:
        item = res.content[0]
        assert isinstance(item, TextContent)
        return item.text
    data = res.structured_content
    assert data is not None
    assert data["status"] == "error", data
    assert data["error"]["ename"] == "KernelDied", data
    return str(data["message"])


# ------------------------------------------------------------------------------ replicas


async def test_a_session_made_on_one_server_is_used_listed_and_deleted_from_another(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "create_session", session_id="shared", description="made on A")
        await call(a, "run_python_code", code="x = 41", session_id="shared")
        used = await call(b, "run_python_code", code="x + 1", session_id="shared")
        assert (used["status"], used["result"]) == ("ok", "42")
        listed = await call(b, "list_sessions")
        assert [(s["session_id"], s["description"]) for s in listed["sessions"]] == [
            ("shared", "made on A")
        ]
        assert len(kernel_gateway.kernel_ids()) == 1  # one kernel, two websockets
        await call(b, "delete_session", session_id="shared")
        assert kernel_gateway.kernel_ids() == set()
        told = await told_text(a, "run_python_code", code="x", session_id="shared")
        assert "Session 'shared' ended: its kernel is gone from the kernel gateway" in told
        assert "create_session" in told
        again = await error(a, "run_python_code", code="x", session_id="shared")
        assert "'shared'" in again
        assert kernel_gateway.kernel_ids() == set()  # nobody brought it back


async def test_a_session_id_taken_on_another_server_is_refused(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "create_session", session_id="mine")
        refused = await error(b, "create_session", session_id="mine")
        assert "'mine'" in refused
        assert "already" in refused
        assert len(kernel_gateway.kernel_ids()) == 1


async def test_a_restart_on_one_server_is_followed_by_the_other_without_a_third_kernel(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "create_session", session_id="s")
        await call(a, "run_python_code", code="x = 1", session_id="s")
        assert (await call(b, "run_python_code", code="x", session_id="s"))["result"] == "1"
        before = kernel_gateway.kernel_ids()
        await call(a, "restart_kernel", session_id="s")
        await call(a, "run_python_code", code="y = 'after'", session_id="s")
        after = kernel_gateway.kernel_ids()
        assert len(after) == 1
        assert after != before
        # B's handle on the old kernel ends; B takes A's new kernel rather than starting one
        seen = await call(b, "run_python_code", code="y", session_id="s")
        if seen["status"] != "ok":  # B's call met the old kernel's end: told, not re-run
            assert seen["error"]["ename"] == "KernelDied", seen
            seen = await call(b, "run_python_code", code="y", session_id="s")
        assert seen["result"] == "'after'", seen
        assert kernel_gateway.kernel_ids() == after


async def test_cells_sent_to_one_session_from_two_servers_never_interleave(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    cell = (
        "import time\n"
        "began = time.monotonic()\n"
        "time.sleep(0.3)\n"
        "spans.append((began, time.monotonic(), WHO))"
    )
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "create_session", session_id="both")
        await call(a, "run_python_code", code="spans = []", session_id="both")
        await call(b, "run_python_code", code="1", session_id="both")  # B knows the session

        async def cells(client: Client[Any], who: str) -> None:
            for _ in range(3):
                res = await call(
                    client,
                    "run_python_code",
                    code=cell.replace("WHO", repr(who)),
                    session_id="both",
                )
                assert res["status"] == "ok", (res["command"], res["output_tail"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(cells, a, "a")
            tg.start_soon(cells, b, "b")
        got = await call(
            a, "run_python_code", code="import json; json.dumps(spans)", session_id="both"
        )
    spans = sorted(json.loads(ast.literal_eval(got["result"])))
    assert sorted(who for _, _, who in spans) == ["a", "a", "a", "b", "b", "b"]
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert start >= end  # each cell began after the one before it had ended


async def test_a_short_time_limit_waiting_behind_another_servers_cell_does_not_stop_it(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    started = tmp_path / "a-started"
    # A's cell outlasts B's limit plus the interrupt grace (3 s), which is when a B that did not
    # wait would interrupt, then restart, the kernel under A's cell
    long_cell = f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(6)\n'a done'"
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "create_session", session_id="busy")
        await call(b, "run_python_code", code="1", session_id="busy")  # B knows the session
        results: dict[str, dict[str, Any]] = {}

        async def run_a() -> None:
            results["a"] = await call(a, "run_python_code", code=long_cell, session_id="busy")

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_a)
            await wait_for_file(started)
            # B's one-second limit starts when A's cell is done, not while B waits behind it
            results["b"] = await call(
                b, "run_python_code", code="'b done'", session_id="busy", timeout_s=1
            )
    assert (results["a"]["status"], results["a"]["result"]) == ("ok", "'a done'")
    assert (results["b"]["status"], results["b"]["result"]) == ("ok", "'b done'")


async def test_a_stopped_server_leaves_its_sessions_to_the_others(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    with http_server(
        tmp_path / "a-workspace",
        "--kernel-gateway-url",
        kernel_gateway.url,
        env={"PYTHON_MCP_SERVER_KERNEL_GATEWAY_TOKEN": kernel_gateway.token},
    ) as server:
        async with Client(server.url) as a:
            await call(a, "create_session", session_id="kept")
            await call(a, "run_python_code", code="x = 7", session_id="kept")
    assert len(kernel_gateway.kernel_ids()) == 1  # server A stopped; its session's kernel stays
    async with Client(create_server(b_config)) as b:
        res = await call(b, "run_python_code", code="x * 6", session_id="kept")
        assert res["result"] == "42"


async def test_a_kernel_that_claims_another_session_is_not_taken_for_it(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    # the attacker: code in one session rewrites what its kernel says it serves, to be found
    # by the other servers as the victim's session (and get the victim's cells)
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    claim = (
        "import json, sys\n"
        "sys.modules['__pmcp__'].sessions.publish(json.dumps("
        "{'session_id': 'victim', 'description': None, 'created': 0, 'signature': 'forged'}))"
    )
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "create_session", session_id="victim")
        await call(a, "run_python_code", code="x = 'the victim'", session_id="victim")
        await call(a, "create_session", session_id="evil")
        assert (await call(a, "run_python_code", code=claim, session_id="evil"))["status"] == "ok"
        seen = await call(b, "run_python_code", code="x", session_id="victim")
        assert seen["result"] == "'the victim'"
        listed = [s["session_id"] for s in (await call(b, "list_sessions"))["sessions"]]
        assert listed.count("victim") == 1


# ------------------------------------------------------------------------------- failure


async def test_a_wrong_gateway_token_is_named_and_the_server_keeps_serving(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    config = on_gateway(tmp_path / "a", kernel_gateway, kernel_gateway_token="not-the-token")
    async with Client(create_server(config)) as client:
        refused = await error(client, "run_python_code", code="1")
        assert f"The kernel gateway at {kernel_gateway.url} refused this server (401" in refused
        assert "--kernel-gateway-token" in refused
        listed = await call(client, "list_sessions")
        assert listed["sessions"] == []
    assert kernel_gateway.kernel_ids() == set()


async def test_the_gateway_down_is_named_and_the_server_recovers_when_it_is_back(
    tmp_path: Path, start_kernel_gateway: Callable[..., KernelGateway]
) -> None:
    gateway = start_kernel_gateway()
    config = on_gateway(tmp_path / "a", gateway)
    async with Client(create_server(config)) as client:
        assert (await call(client, "run_python_code", code="x = 1\nx"))["result"] == "1"
        gateway.stop()
        down = await error(client, "run_python_code", code="x")
        # the code was not sent: the call says so whether the server had seen the gateway
        # go (cannot be reached) or found out sending (closed while sending; call again)
        assert f"gateway at {gateway.url}" in down
        assert "cannot be reached" in down or "call again" in down
        assert (await call(client, "list_sessions"))["sessions"] != []  # still serving
        gateway.start()
        back = await call(client, "run_python_code", code="'x' in globals()")
        assert back["result"] == "False"  # a new kernel: the old one went with the gateway
        assert back["state_kept"] is False


async def test_a_websocket_cut_mid_cell_ends_the_cell_with_the_reason(
    tmp_path: Path, start_kernel_gateway: Callable[..., KernelGateway]
) -> None:
    gateway = start_kernel_gateway()
    config = on_gateway(tmp_path / "a", gateway)
    started = tmp_path / "started"
    code = f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(60)"
    async with Client(create_server(config)) as client:
        async with anyio.create_task_group() as tg:
            results: list[dict[str, Any]] = []

            async def run() -> None:
                results.append(await call(client, "run_python_code", code=code))

            tg.start_soon(run)
            await wait_for_file(started)
            gateway.stop(kill=True)  # the gateway dies: its websocket and kernels with it
        cut = results[0]
        assert cut["status"] == "error"
        assert cut["error"]["ename"] == "KernelDied"
        assert f"the gateway at {gateway.url} cannot be reached" in cut["error"]["evalue"]
        assert cut["state_kept"] is False
        gateway.start()
        assert (await call(client, "run_python_code", code="2 + 2"))["result"] == "4"


async def test_a_kernel_culled_by_the_gateway_ends_its_session_with_a_clear_message(
    tmp_path: Path, start_kernel_gateway: Callable[..., KernelGateway]
) -> None:
    gateway = start_kernel_gateway(cull_idle_timeout_s=2, cull_interval_s=1, cull_connected=True)
    # no kernel_info probes: they are activity, and would keep the kernel from being culled
    config = on_gateway(tmp_path / "a", gateway, health_check_interval_s=3600)
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="idle")
        await call(client, "run_python_code", code="x = 1", session_id="idle")
        with anyio.fail_after(30):
            while gateway.kernel_ids():
                await anyio.sleep(0.2)
        told = await told_text(client, "run_python_code", code="x", session_id="idle")
        assert "Session 'idle' ended: its kernel is gone from the kernel gateway" in told
        assert "culled there after idling" in told


async def test_a_gateway_that_stops_answering_is_named_within_its_timeouts(
    tmp_path: Path, start_kernel_gateway: Callable[..., KernelGateway]
) -> None:
    gateway = start_kernel_gateway()
    config = on_gateway(tmp_path / "a", gateway, kernel_gateway_connect_timeout_s=1)
    async with Client(create_server(config)) as client:
        gateway.pause()
        try:
            with anyio.fail_after(30):
                slow = await error(client, "create_session", session_id="late")
        finally:
            gateway.resume()
        assert f"The kernel gateway at {gateway.url}" in slow
        assert (await call(client, "run_python_code", code="3 * 3"))["result"] == "9"


async def test_a_gateway_that_does_not_list_kernels_still_serves_one_server(
    tmp_path: Path, start_kernel_gateway: Callable[..., KernelGateway]
) -> None:
    gateway = start_kernel_gateway(list_kernels=False)
    config = on_gateway(tmp_path / "a", gateway)
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="solo")
        assert (await call(client, "run_python_code", code="6 * 7", session_id="solo"))[
            "result"
        ] == "42"
        assert [s["session_id"] for s in (await call(client, "list_sessions"))["sessions"]] == [
            "solo"
        ]
        await call(client, "restart_kernel", session_id="solo")
        assert (await call(client, "run_python_code", code="1", session_id="solo"))[
            "status"
        ] == "ok"
        # the gateway will not list its kernels: its log names the one the restart started
        started = re.findall(r"Kernel started: ([0-9a-f-]+)", gateway.log_text())
        gateway.delete_kernel(started[-1])  # deleted behind the server's back: asked one by one
        told = await told_text(client, "run_python_code", code="1", session_id="solo")
        assert "Session 'solo' ended: its kernel is gone from the kernel gateway" in told


async def test_an_own_environment_is_refused_on_a_gateway_with_what_to_do_instead(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    config = on_gateway(tmp_path / "a", kernel_gateway)
    async with Client(create_server(config)) as client:
        refused = await error(client, "create_session", session_id="env", dependencies=["six"])
        assert f"kernels on the gateway at {kernel_gateway.url} cannot use" in refused
        assert "install_dependencies" in refused
        once = await error(client, "execute_python", code="import six", dependencies=["six"])
        assert f"kernels on the gateway at {kernel_gateway.url} cannot use" in once
        assert "create_session, install_dependencies" in once
        assert (await call(client, "list_sessions"))["sessions"] == []
    assert kernel_gateway.kernel_ids() == set()


@pytest.mark.network
async def test_install_dependencies_installs_where_the_gateway_kernel_runs(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    config = on_gateway(tmp_path / "a", kernel_gateway)
    remove = (
        "import shutil, subprocess, sys\n"
        "subprocess.run([shutil.which('uv'), 'pip', 'uninstall', '--python', sys.executable, "
        "'humanize'], capture_output=True, check=False).returncode"
    )
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="pk")
        try:
            res = await call(client, "install_dependencies", packages=["humanize"], session_id="pk")
            assert res["status"] == "ok", (res["command"], res["output_tail"])
            assert res["sandboxed"] is False  # the gateway's isolation applies, not ours
            # the kernel's own interpreter on the gateway side, not the server's
            assert str(kernel_gateway.venv / "bin" / "python") in res["command"]
            assert "kernel on the gateway" in res["message"]
            ran = await call(
                client,
                "run_python_code",
                code="import humanize; humanize.__name__",
                session_id="pk",
            )
            assert ran["result"] == "'humanize'"
        finally:
            await call(client, "run_python_code", code=remove, session_id="pk")


async def test_another_servers_workspace_kernel_is_not_a_session(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        await call(a, "write_file", path="note.txt", content="hi")  # A's workspace kernel starts
        assert len(kernel_gateway.kernel_ids()) == 1
        assert (await call(b, "list_sessions"))["sessions"] == []
        assert (await call(b, "read_file", path="note.txt"))["content"] == "hi"


async def test_one_shot_runs_on_one_server_never_stall_or_break_another_servers_listing(
    tmp_path: Path, kernel_gateway: KernelGateway
) -> None:
    # a one-shot run's kernel is shut down as its answer goes out: another server asking it
    # then, or the server's own next session lookup, must neither wait for it nor fail on it
    a_config = on_gateway(tmp_path / "a", kernel_gateway)
    b_config = on_gateway(tmp_path / "b", kernel_gateway)
    async with Client(create_server(a_config)) as a, Client(create_server(b_config)) as b:
        for n in range(4):
            assert (await call(a, "execute_python", code=f"{n} * 2"))["result"] == str(n * 2)
            listed = (await call(b, "list_sessions"))["sessions"]
            assert [s["session_id"] for s in listed] == (["default"] if n else [])
            assert (await call(a, "run_python_code", code="1"))["status"] == "ok"
