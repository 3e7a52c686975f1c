"""No orphans: ending a session, a restart or the server ends the kernel and all it started."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from python_mcp_server.config import ServerConfig
from python_mcp_server.kernels import LocalBackend
from python_mcp_server.procs import find_cgroup_parent, sweep_stale_cgroups
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from python_mcp_server.services import Services
from python_mcp_server.services.sandboxing import sandbox_factory
from tests.conftest import pid_alive
from tests.helpers import (
    argv_of,
    descendants,
    host_pid,
    kernel_interpreters,
    kernel_pid,
    kernel_processes,
    parent_of,
)
from tests.servers import sandbox_env, server_command, server_env

pytestmark = pytest.mark.anyio

DETACHED = (
    "import subprocess, os\n"
    "child = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
    "(os.getpid(), child.pid)"
)
needs_cgroup = pytest.mark.skipif(
    find_cgroup_parent() is None, reason="no writable cgroup v2 tree with cgroup.kill here"
)


def _host_pids(kernel: int, result: str | None) -> tuple[int, int]:
    """The host pids of the kernel (host pid `kernel`) and of the child DETACHED started, from
    the pids the kernel printed (in a sandbox, pids of its own namespace)."""
    assert result is not None
    inner_kernel, inner_child = (int(p) for p in result.strip("()").split(", "))
    assert host_pid(kernel, inner_kernel) == kernel
    return kernel, host_pid(kernel, inner_child)


async def _pids(client: Client[Any], res: Any, session_id: str = "default") -> tuple[int, int]:
    data = res.structured_content
    assert data is not None
    return _host_pids(await kernel_pid(client, session_id), data["result"])


async def _gone(pid: int) -> None:
    with anyio.fail_after(5):
        while pid_alive(pid):
            await anyio.sleep(0.02)


def _cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


async def test_each_kernel_leads_its_own_process_group(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        kernel, child = await _pids(
            client, await client.call_tool("run_python_code", {"code": DETACHED})
        )
        reap_pids.append(child)
        group = os.getpgid(kernel)
        # the kernel, or the sandbox launching it, leads a session and process group of its own
        assert group == os.getsid(kernel)
        assert group != os.getpgrp()
        assert group == kernel or group in _ancestors(kernel)
        assert os.getpgid(child) != group


@needs_cgroup
async def test_each_kernel_and_its_children_share_a_cgroup_of_their_own(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        kernel, child = await _pids(
            client, await client.call_tool("run_python_code", {"code": DETACHED})
        )
        reap_pids.append(child)
        group = _cgroup_of(kernel)
        assert group.startswith(f"/python-mcp-server/{os.getpid()}-")
        assert _cgroup_of(child) == group


async def test_delete_session_ends_a_child_that_left_the_kernels_session(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        res = await client.call_tool("run_python_code", {"session_id": "a", "code": DETACHED})
        kernel, child = await _pids(client, res, "a")
        reap_pids.append(child)
        assert pid_alive(child)
        await client.call_tool("delete_session", {"session_id": "a"})
        await _gone(kernel)
        await _gone(child)


async def test_restart_kernel_ends_a_child_that_left_the_kernels_session(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        kernel, child = await _pids(
            client, await client.call_tool("run_python_code", {"code": DETACHED})
        )
        reap_pids.append(child)
        await client.call_tool("restart_kernel", {})
        await _gone(kernel)
        await _gone(child)


async def test_without_cgroups_the_process_tree_kill_ends_a_detached_child(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    backend = LocalBackend(use_cgroups=False, sandbox=sandbox_factory(plan_sandbox(config), config))
    assert backend.cgroup_parent is None
    async with Services.open(config, backend) as svc:
        res = await svc.execution.run("default", DETACHED)
        pid = svc.sessions.get("default").pid
        assert pid is not None
        kernel, child = _host_pids(pid, res.result)
        reap_pids.append(child)
        assert _cgroup_of(kernel) == _cgroup_of(os.getpid())
        await svc.sessions.delete("default")
        await _gone(kernel)
        await _gone(child)


@needs_cgroup
async def test_children_of_a_kernel_killed_from_outside_end_when_it_is_replaced(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        kernel, child = await _pids(
            client, await client.call_tool("run_python_code", {"code": DETACHED})
        )
        reap_pids.append(child)
        os.kill(kernel, signal.SIGKILL)
        await _gone(kernel)
        await _gone(child)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_server_exit_ends_every_kernel_and_its_detached_children(
    workspace: Path, reap_pids: list[int]
) -> None:
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "1"
    )
    transport = StdioTransport(command=cmd[0], args=cmd[1:], env=sandbox_env(), keep_alive=False)
    async with Client(transport) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        first = await _pids(client, await client.call_tool("run_python_code", {"code": DETACHED}))
        res = await client.call_tool("run_python_code", {"session_id": "a", "code": DETACHED})
        second = await _pids(client, res, "a")
        reap_pids.extend([first[1], second[1]])
        server = _server_of(first[0])
        assert server == _server_of(second[0])
        left = descendants(server)  # kernels, the pool kernel, what they started, their sandboxes
        assert {*first, *second} <= set(left)
    await _gone(server)
    for pid in left:
        await _gone(pid)


def _ancestors(pid: int) -> list[int]:
    found = []
    parent = parent_of(pid)
    while parent:
        found.append(parent)
        parent = parent_of(parent)
    return found


def _server_of(kernel: int) -> int:
    """The server process a kernel belongs to: its nearest ancestor running python_mcp_server."""
    return next(p for p in _ancestors(kernel) if argv_of(p)[1:3] == ["-m", "python_mcp_server"])


def _wait_until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_server_stopped_while_starting_ends_the_kernel_it_started(
    workspace: Path, signum: int
) -> None:
    """The first kernel boots while the server is still importing; a signal then still ends it."""
    cmd = server_command(
        "--transport", "stdio", "--workspace-dir", str(workspace), "--kernel-pool-size", "1"
    )
    log = workspace.parent / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=sink, env=server_env()
        )
    try:
        _wait_until(
            lambda: bool(kernel_interpreters(proc.pid)) or proc.poll() is not None, 30, "a kernel"
        )
        kernels = kernel_processes(proc.pid)  # with a sandbox, bubblewrap around the kernel too
        assert kernels, log.read_text()
        proc.send_signal(signum)
        assert proc.wait(30) == 0, log.read_text()
        _wait_until(lambda: not any(pid_alive(p) for p in kernels), 5, f"kernels {kernels} to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdin is not None
        proc.stdin.close()


@needs_cgroup
def test_groups_left_by_a_server_that_died_are_ended_when_a_backend_starts(
    reap_pids: list[int],
) -> None:
    parent = find_cgroup_parent()
    assert parent is not None
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = parent / f"{gone.pid}-stale0000000"
    stale.mkdir()
    straggler = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    reap_pids.append(straggler.pid)
    (stale / "cgroup.procs").write_text(str(straggler.pid))
    backend = LocalBackend()
    try:
        assert straggler.wait(timeout=5) == -signal.SIGKILL
        sweep_stale_cgroups(parent)  # the first sweep may have met the group not yet empty
        assert not stale.exists()
    finally:
        asyncio.run(backend.aclose())
