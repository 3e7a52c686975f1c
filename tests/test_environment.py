"""get_environment_info and the host reader behind it."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server import __version__
from python_mcp_server.config import ServerConfig
from python_mcp_server.health.system import host_resources
from python_mcp_server.sandbox.host import INSTALL_HINT, Protection, SandboxPlan, plan_sandbox
from python_mcp_server.server import create_server

pytestmark = pytest.mark.anyio


def data(res: Any) -> dict[str, Any]:
    assert not res.is_error, res.content[0].text
    assert isinstance(res.structured_content, dict)
    return res.structured_content


def test_host_resources_reads_cpus_and_memory() -> None:
    host = host_resources()
    assert host.cpu_count == os.cpu_count()
    assert 0 < host.memory_available_bytes <= host.memory_total_bytes


async def test_environment_info_describes_python_host_workspace_and_limits(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        info = data(await client.call_tool("get_environment_info", {}))
    host = {k: info.pop(k) for k in ("memory_total_bytes", "memory_available_bytes")}
    assert 0 < host["memory_available_bytes"] <= host["memory_total_bytes"]
    assert info.pop("pythons")[0] == platform.python_version()
    assert info.pop("session") is None
    environments = info.pop("environments")
    assert environments["folder"] == str(config.env_root)
    assert environments["session_environments"] == 0
    plan = plan_sandbox(config)
    assert info.pop("sandbox") == {
        "mode": config.sandbox,
        "enabled": plan.enabled,
        "protections": [
            {"name": p.name, "active": p.active, "detail": p.detail} for p in plan.protections
        ],
        "network": "none" if plan.enabled else "full",
        "allowed_hosts": [],
        "default_limits": {
            "memory_mb": config.kernel_memory_mb,
            "max_processes": config.kernel_max_processes,
            "cpus": None,
        },
        "refused_connections": 0,
        "recent_refusals": [],
    }
    assert info == {
        "server_version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "kernel_python": config.kernel_python,
        "server_python": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "workspace": str(config.workspace_root),
        "sessions": 0,
        "limits": {
            "execution_timeout_s": config.execution_timeout_s,
            "script_timeout_s": config.script_timeout_s,
            "install_timeout_s": config.install_timeout_s,
            "session_idle_timeout_s": config.session_idle_timeout_s,
            "max_sessions": config.max_sessions,
            "max_output_chars": config.max_output_chars,
            "max_file_read_bytes": config.max_file_read_bytes,
            "max_file_write_bytes": config.max_file_write_bytes,
            "max_list_entries": config.max_list_entries,
            "min_free_memory_mb": config.min_free_memory_mb,
        },
    }


async def test_environment_info_counts_live_sessions(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "one"})
        info = data(await client.call_tool("get_environment_info", {}))
    assert info["sessions"] == 1


async def test_a_different_kernel_interpreter_is_asked_for_its_own_version(
    config: ServerConfig, tmp_path: Path
) -> None:
    other = tmp_path / "python-other"
    other.symlink_to(sys.executable)
    async with Client(create_server(replace(config, kernel_python=str(other)))) as client:
        info = data(await client.call_tool("get_environment_info", {}))
    assert (info["kernel_python"], info["python_version"], info["python_implementation"]) == (
        str(other),
        platform.python_version(),
        platform.python_implementation(),
    )


async def test_an_interpreter_that_cannot_run_is_reported_as_unknown(
    config: ServerConfig, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-python")
    async with Client(create_server(replace(config, kernel_python=missing))) as client:
        info = data(await client.call_tool("get_environment_info", {}))
    assert (info["kernel_python"], info["python_version"]) == (missing, "unknown")


def test_the_unsandboxed_warning_says_why_when_auto_could_not_sandbox() -> None:
    why = f"bubblewrap is not installed; {INSTALL_HINT}"
    fell_back = SandboxPlan("auto", False, protections=(Protection("filesystem", False, why),))
    assert fell_back.summary().startswith(f"kernels are NOT sandboxed (--sandbox auto: {why}): ")
    assert (
        SandboxPlan("off", False)
        .summary()
        .startswith("kernels are NOT sandboxed (--sandbox off): ")
    )
