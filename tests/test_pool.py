"""The warm pool: pre-started kernels handed to new sessions and restarts, refilled, cleaned up."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.conftest import pid_alive
from tests.helpers import kernel_interpreters, kernel_pid

pytestmark = pytest.mark.anyio


async def _pool(client: Client[Any]) -> dict[str, Any]:
    res = await client.call_tool("get_kernel_health", {})
    assert res.structured_content is not None
    return dict(res.structured_content["pool"])


async def _wait_ready(client: Client[Any], ready: int) -> None:
    with anyio.fail_after(30):
        while (await _pool(client))["ready"] != ready:
            await anyio.sleep(0.05)


def _started_at(pid: int) -> float:
    """Process start time, seconds since the epoch."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _kernels_of_this_process() -> set[int]:
    """The kernel interpreters below this process (the in-memory server runs in it), sandboxed
    or not."""
    return set(kernel_interpreters())


@pytest.mark.local_kernels
async def test_create_session_takes_a_pooled_kernel_and_the_pool_refills(
    config: ServerConfig,
) -> None:
    config = replace(config, kernel_pool_size=1)
    async with Client(create_server(config)) as client:
        await _wait_ready(client, 1)
        asked = time.time()
        res = await client.call_tool("create_session", {"session_id": "a"})
        assert res.structured_content is not None
        pid = res.structured_content["kernel_pid"]
        assert _started_at(pid) < asked - 0.01
        await _wait_ready(client, 1)
        assert (await _pool(client)) == {"size": 1, "ready": 1, "starting": 0}


@pytest.mark.local_kernels
async def test_the_first_use_of_default_takes_a_pooled_kernel(config: ServerConfig) -> None:
    config = replace(config, kernel_pool_size=1)
    async with Client(create_server(config)) as client:
        await _wait_ready(client, 1)
        asked = time.time()
        await client.call_tool("run_python_code", {"code": "1"})
        assert _started_at(await kernel_pid(client)) < asked - 0.01


@pytest.mark.local_kernels
async def test_restart_kernel_takes_a_pooled_kernel(config: ServerConfig) -> None:
    config = replace(config, kernel_pool_size=1)
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        await _wait_ready(client, 1)
        asked = time.time()
        res = await client.call_tool("restart_kernel", {"session_id": "a"})
        assert res.structured_content is not None
        assert _started_at(res.structured_content["kernel_pid"]) < asked - 0.01


async def test_pool_size_zero_starts_no_kernel(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        assert (await _pool(client)) == {"size": 0, "ready": 0, "starting": 0}
        assert _kernels_of_this_process() == set()


async def test_pooled_kernels_are_shut_down_with_the_server(config: ServerConfig) -> None:
    config = replace(config, kernel_pool_size=2)
    async with Client(create_server(config)) as client:
        await _wait_ready(client, 2)
        pooled = _kernels_of_this_process()
        assert len(pooled) == 2
    for pid in pooled:
        assert not pid_alive(pid)
