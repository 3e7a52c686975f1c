"""Shared fixtures. Fixtures build values (configs, folders); tests open their own clients."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_mcp_server.config import ServerConfig


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def config(workspace: Path) -> ServerConfig:
    """A test config: no warm pool (each test starts only the kernels it uses), short timeouts."""
    return ServerConfig(
        workspace_dir=workspace,
        execution_timeout_s=30,
        kernel_pool_size=0,
        interrupt_grace_s=3,
        health_check_interval_s=0.5,
    )


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        with Path(f"/proc/{pid}/stat").open() as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def reap_pids() -> Iterator[list[int]]:
    """Pids a test started outside the server; killed at teardown if the test left them."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "config" in names or "workspace" in names:
            item.add_marker(pytest.mark.kernel)
