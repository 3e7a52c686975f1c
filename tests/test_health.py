"""get_kernel_health and check_kernel_responsiveness against real kernels."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.health.monitor import HealthMonitor
from python_mcp_server.health.system import HostResources
from python_mcp_server.server import create_server
from tests.conftest import pid_alive
from tests.helpers import host_pid, kernel_pid

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


def _data(res: Any) -> dict[str, Any]:
    assert res.structured_content is not None
    return dict(res.structured_content)


async def test_kernel_health_reports_process_and_host_figures(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        listed = _data(await client.call_tool("list_sessions", {}))
        res = await client.call_tool("get_kernel_health", {"session_id": "a"})
    data = _data(res)
    [kernel] = data["kernels"]
    assert kernel["session_id"] == "a"
    assert kernel["pid"] == listed["sessions"][0]["kernel_pid"]
    assert (kernel["state"], kernel["process_status"]) == ("idle", "sleeping")
    assert kernel["rss_mb"] > 10
    assert kernel["threads"] >= 1
    assert kernel["open_files"] >= 3
    assert kernel["uptime_s"] >= 0
    assert kernel["cpu_percent"] >= 0
    assert (kernel["child_processes"], kernel["restarts"]) == (0, 0)
    host = data["host"]
    assert 0 < host["memory_available_mb"] <= host["memory_total_mb"]
    assert host["memory_floor_mb"] == config.min_free_memory_mb
    assert 0 < host["disk_free_mb"] <= host["disk_total_mb"]
    assert host["disk_path"] == str(config.workspace_root)
    assert res.content[0].text.startswith(f"a: idle, pid {kernel['pid']}, sleeping, ")


async def test_kernel_health_without_a_session_id_covers_every_session(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        await client.call_tool("create_session", {"session_id": "b"})
        data = _data(await client.call_tool("get_kernel_health", {}))
    assert [k["session_id"] for k in data["kernels"]] == ["a", "b"]


async def test_kernel_health_counts_the_kernels_child_processes(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "run_python_code",
            {"code": "import subprocess\nchild = subprocess.Popen(['sleep', '1000'])\nchild.pid"},
        )
        kernel = await kernel_pid(client)
        reap_pids.append(host_pid(kernel, int(_data(res)["result"])))
        data = _data(await client.call_tool("get_kernel_health", {"session_id": "default"}))
    assert data["kernels"][0]["child_processes"] == 1


async def test_kernel_health_shows_an_automatic_restart_and_its_reason(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        pid = _data(await client.call_tool("get_kernel_health", {"session_id": "a"}))["kernels"][0][
            "pid"
        ]
        os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(30):
            while True:
                data = _data(await client.call_tool("get_kernel_health", {"session_id": "a"}))
                if data["kernels"][0]["restarts"] == 1:
                    break
                await anyio.sleep(0.1)
    kernel = data["kernels"][0]
    assert kernel["pid"] != pid
    assert "was killed by SIGKILL" in kernel["last_restart_reason"]


async def test_an_idle_kernel_is_responsive(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        res = await client.call_tool(
            "check_kernel_responsiveness", {"session_id": "a", "timeout_s": 30}
        )
    data = _data(res)
    # how fast it answers depends on the machine's load; that it answers does not
    assert (data["busy"], data["timeout_s"]) == (False, 30.0)
    assert data["verdict"] in {"responsive", "slow"}
    assert data["round_trip_ms"] > 0
    assert data["message"].startswith("The kernel answered ")


async def test_a_kernel_running_a_cell_still_answers_on_the_control_channel(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client, anyio.create_task_group() as tg:
        await client.call_tool("create_session", {"session_id": "a"})
        tg.start_soon(
            client.call_tool,
            "run_python_code",
            {"session_id": "a", "code": "import time\nwhile True: time.sleep(0.01)"},
        )
        with anyio.fail_after(10):
            while (
                _data(await client.call_tool("list_sessions", {}))["sessions"][0]["state"] != "busy"
            ):
                await anyio.sleep(0.02)
        data = _data(await client.call_tool("check_kernel_responsiveness", {"session_id": "a"}))
        await client.call_tool("interrupt_kernel", {"session_id": "a"})
    assert (data["verdict"], data["busy"]) == ("responsive", True)
    assert data["message"].endswith(" ms while a cell was running.")


async def test_a_stopped_kernel_is_unresponsive(config: ServerConfig) -> None:
    config = replace(config, kernel_probe_failures=1_000_000)
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        pid = _data(await client.call_tool("list_sessions", {}))["sessions"][0]["kernel_pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            res = await client.call_tool(
                "check_kernel_responsiveness", {"session_id": "a", "timeout_s": 0.5}
            )
        finally:
            os.kill(pid, signal.SIGCONT)
    data = _data(res)
    assert (data["verdict"], data["round_trip_ms"], data["pid"]) == ("unresponsive", None, pid)
    assert data["message"] == (
        "The kernel did not answer within 0.5 s. Call interrupt_kernel if a cell is stuck, or "
        "restart_kernel (variables are lost). An idle kernel that stays unresponsive is "
        "restarted automatically."
    )


async def test_a_dead_kernel_is_reported_dead(config: ServerConfig) -> None:
    config = replace(config, health_check_interval_s=3600)
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        pid = _data(await client.call_tool("list_sessions", {}))["sessions"][0]["kernel_pid"]
        os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(10):
            while (
                _data(await client.call_tool("list_sessions", {}))["sessions"][0]["state"] != "dead"
            ):
                await anyio.sleep(0.05)
        data = _data(await client.call_tool("check_kernel_responsiveness", {"session_id": "a"}))
    assert not pid_alive(pid)
    assert data["verdict"] == "dead"
    assert data["message"] == (
        "The kernel was killed by SIGKILL (killed from outside, or out of memory). The server "
        "restarts a dead kernel automatically within a few seconds; the next call on this "
        "session says what happened."
    )


async def test_responsiveness_of_an_unknown_session_is_a_tool_error(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "check_kernel_responsiveness", {"session_id": "nope"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "No session 'nope'. Call list_sessions to see live sessions, or create_session to start "
        "one."
    )


def test_the_monitor_reads_host_memory_through_its_sample_seam() -> None:
    monitor = HealthMonitor(sample=lambda: HostResources(4, 8192 * MB, 300 * MB))
    assert monitor.available_mb() == 300
    assert monitor.host().cpu_count == 4
