"""Supervision, expiry, the memory floor and restarts that keep variables."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import ResourceLimitError
from python_mcp_server.health.monitor import HealthMonitor
from python_mcp_server.health.system import HostResources
from python_mcp_server.kernels import LocalBackend
from python_mcp_server.server import create_server
from python_mcp_server.services.sessions import SessionManager
from tests.conftest import kernels_mode, pid_alive

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


async def _session(client: Client[Any], session_id: str) -> dict[str, Any]:
    res = await client.call_tool("list_sessions", {})
    assert res.structured_content is not None
    for info in res.structured_content["sessions"]:
        if info["session_id"] == session_id:
            return dict(info)
    return {}


async def _wait_for_new_kernel(client: Client[Any], session_id: str, old_pid: int) -> int:
    with anyio.fail_after(30):
        while True:
            info = await _session(client, session_id)
            if info["kernel_pid"] not in (None, old_pid) and info["state"] == "idle":
                return int(info["kernel_pid"])
            await anyio.sleep(0.1)


@pytest.mark.local_kernels
async def test_a_kernel_killed_while_idle_is_restarted_and_the_next_call_says_so(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        await client.call_tool("run_python_code", {"session_id": "a", "code": "x = 1"})
        pid = (await _session(client, "a"))["kernel_pid"]
        os.kill(pid, signal.SIGKILL)
        await _wait_for_new_kernel(client, "a", pid)
        res = await client.call_tool(
            "run_python_code", {"session_id": "a", "code": "'x' in globals()"}
        )
        again = await client.call_tool("run_python_code", {"session_id": "a", "code": "2"})
    data = res.structured_content
    assert data is not None
    assert data["result"] == "False"
    assert re.fullmatch(
        f"At {WHEN} the kernel of session 'a' was killed by SIGKILL \\(killed from outside, or "
        "out of memory\\) while idle; it was restarted automatically and all variables were "
        "lost.",
        data["message"],
    )
    assert data["state_kept"] is False
    assert again.structured_content is not None
    assert again.structured_content["message"] is None
    assert again.structured_content["state_kept"] is True


@pytest.mark.local_kernels
async def test_a_stopped_kernel_is_restarted_after_failed_kernel_info_checks(
    config: ServerConfig,
) -> None:
    config = replace(config, kernel_probe_timeout_s=0.5, kernel_probe_failures=2)
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        pid = (await _session(client, "a"))["kernel_pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            await _wait_for_new_kernel(client, "a", pid)
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert not pid_alive(pid)
        res = await client.call_tool("run_python_code", {"session_id": "a", "code": "1 + 1"})
    data = res.structured_content
    assert data is not None
    assert data["result"] == "2"
    assert re.fullmatch(
        f"At {WHEN} the kernel of session 'a' stopped answering while idle \\(no reply to 2 "
        "kernel_info checks of 0.5 s each; its process was stopped \\(SIGSTOP or a debugger\\)\\); "
        "it was restarted automatically and all variables were lost.",
        data["message"],
    )


async def test_a_session_unused_past_the_idle_timeout_expires(config: ServerConfig) -> None:
    config = replace(config, session_idle_timeout_s=1, health_check_interval_s=0.2)
    async with Client(create_server(config)) as client:
        # from create_session itself: on a loaded machine the session may expire before a
        # list_sessions call answers
        created = await client.call_tool("create_session", {"session_id": "a"})
        assert created.structured_content is not None
        pid = created.structured_content["kernel_pid"]
        with anyio.fail_after(15):
            while await _session(client, "a"):
                await anyio.sleep(0.1)
        res = await client.call_tool(
            "run_python_code", {"session_id": "a", "code": "1"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "Session 'a' expired after 1 s without use and its kernel was shut down; its variables "
        "are gone. Call create_session to start a new one."
    )
    assert not pid_alive(pid)


async def test_the_default_session_after_expiry_starts_fresh_and_says_so(
    config: ServerConfig,
) -> None:
    config = replace(config, session_idle_timeout_s=1, health_check_interval_s=0.2)
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "x = 1"})
        with anyio.fail_after(15):
            while await _session(client, "default"):
                await anyio.sleep(0.1)
        res = await client.call_tool("run_python_code", {"code": "'x' in globals()"})
    data = res.structured_content
    assert data is not None
    assert (data["result"], data["message"]) == (
        "False",
        (
            "Session 'default' had expired after 1 s without use, so a fresh kernel was "
            "started; earlier variables are gone."
        ),
    )


async def test_new_sessions_are_refused_below_the_memory_floor(config: ServerConfig) -> None:
    config = replace(config, min_free_memory_mb=1 << 40)
    async with Client(create_server(config)) as client:
        res = await client.call_tool("create_session", {"session_id": "a"}, raise_on_error=False)
        listed = await client.call_tool("list_sessions", {})
    assert res.is_error
    assert re.fullmatch(
        r"No new session was started: the host has \d+ MB of memory available, below this "
        r"server's floor of 1099511627776 MB \(--min-free-memory-mb\). Delete sessions you no "
        r"longer need with delete_session, or free memory, then try again.",
        res.content[0].text,
    )
    assert listed.structured_content is not None
    assert listed.structured_content["sessions"] == []


async def test_the_memory_floor_reads_the_host_through_the_sample_seam(
    config: ServerConfig,
) -> None:
    config = replace(config, min_free_memory_mb=256)
    monitor = HealthMonitor(sample=lambda: HostResources(2, 8192 * MB, 100 * MB))
    backend = LocalBackend()
    try:
        async with SessionManager(config, backend, monitor) as sessions:
            with pytest.raises(ResourceLimitError) as caught:
                await sessions.create("a")
            assert sessions.ids() == []
    finally:
        await backend.aclose()
    assert str(caught.value) == (
        "No new session was started: the host has 100 MB of memory available, below this "
        "server's floor of 256 MB (--min-free-memory-mb). Delete sessions you no longer need "
        "with delete_session, or free memory, then try again."
    )


PRESERVE_SETUP = """
import socket, math
import pandas as pd
x = 41
df = pd.DataFrame({"a": [1, 2, 3]})
def add_one(v):
    return v + 1
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
p = Point(1, 2)
gen = (i for i in range(3))
sock = socket.socket()
_private = 5
"""


def pid_note(pid: int | None) -> str:
    return f" (new pid {pid})" if pid is not None else ""


async def test_restart_with_preserve_state_restores_picklable_values_and_names_the_rest(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": PRESERVE_SETUP})
        old_pid = (await _session(client, "default"))["kernel_pid"]
        res = await client.call_tool("restart_kernel", {"preserve_state": True})
        after = await client.call_tool(
            "run_python_code",
            {"code": "(add_one(x), int(df['a'].sum()), p.y, '_private' in globals())"},
        )
    data = res.structured_content
    assert data is not None
    assert data["kernel_pid"] != old_pid or kernels_mode() == "gateway"  # no pid there
    assert data["state_preserved"] is True
    assert data["restored"] == ["Point", "add_one", "df", "p", "x"]
    assert data["dropped"] == [
        {
            "name": "gen",
            "reason": "it cannot be pickled: TypeError: cannot pickle 'generator' object",
        },
        {"name": "math", "reason": "it is a module; import it again"},
        {"name": "pd", "reason": "it is a module; import it again"},
        {
            "name": "sock",
            "reason": "it cannot be pickled: TypeError: cannot pickle 'socket' object",
        },
        {"name": "socket", "reason": "it is a module; import it again"},
    ]
    assert data["message"] == (
        f"Kernel restarted{pid_note(data['kernel_pid'])}; restored 5 variable(s): Point, "
        "add_one, df, p, x. Not carried over: gen (it cannot be pickled: TypeError: cannot pickle "
        "'generator' object); math (it is a module; import it again); pd (it is a module; import "
        "it again); sock (it cannot be pickled: TypeError: cannot pickle 'socket' object); "
        "socket (it is a module; import it again)."
    )
    assert after.structured_content is not None
    assert after.structured_content["result"] == "(42, 6, 2, False)"


async def test_restart_without_preserve_state_clears_every_variable(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "x = 1"})
        res = await client.call_tool("restart_kernel", {})
        after = await client.call_tool("run_python_code", {"code": "'x' in globals()"})
    data = res.structured_content
    assert data is not None
    assert (data["state_preserved"], data["restored"], data["dropped"]) == (False, [], [])
    assert data["message"] == (
        f"Kernel restarted{pid_note(data['kernel_pid'])}; all variables were cleared."
    )
    assert after.structured_content is not None
    assert after.structured_content["result"] == "False"


async def test_once_the_server_is_stopping_new_cells_and_sessions_are_refused(
    config: ServerConfig,
) -> None:
    """While the server lets the calls it interrupted be answered, nothing new starts."""
    from python_mcp_server.services import Services

    async with Services.open(config) as services, Client(create_server(config, services)) as client:
        await services.sessions.interrupt_running()  # what a signal does first
        cell = await client.call_tool("run_python_code", {"code": "1"}, raise_on_error=False)
        new = await client.call_tool("create_session", {}, raise_on_error=False)
        still = await client.call_tool("list_sessions", {})
    for refused in (cell, new):
        assert refused.is_error
        assert refused.content[0].text.startswith(
            "The server is shutting down, so it starts no new code or session; call again once"
        )
    assert still.structured_content is not None
