"""Shared fixtures. Fixtures build values (configs, folders); tests open their own clients."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_mcp_server.config import SandboxMode, ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox

SANDBOX_ENV = "PYTHON_MCP_SERVER_TEST_SANDBOX"


def sandbox_mode() -> SandboxMode:
    """The sandbox mode the suite runs kernels in: `PYTHON_MCP_SERVER_TEST_SANDBOX` (auto, on or
    off; auto when unset)."""
    value = os.environ.get(SANDBOX_ENV, "auto").strip().lower() or "auto"
    if value == "auto":
        return "auto"
    if value == "on":
        return "on"
    if value == "off":
        return "off"
    raise pytest.UsageError(f"{SANDBOX_ENV} must be auto, on or off, not {value!r}")


def sandboxed() -> bool:
    """Whether kernels of a server the suite starts run inside the sandbox."""
    return plan_sandbox(ServerConfig(sandbox=sandbox_mode())).enabled


def pytest_report_header() -> str:
    mode = sandbox_mode()
    return f"{SANDBOX_ENV}={mode}: {plan_sandbox(ServerConfig(sandbox=mode)).summary()}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def suite_env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the suite's servers keep per-session environments: never the user's own cache."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def config(workspace: Path, suite_env_dir: Path) -> ServerConfig:
    """A test config: no warm pool (each test starts only the kernels it uses), short timeouts."""
    return ServerConfig(
        workspace_dir=workspace,
        env_dir=suite_env_dir,
        env_prebuild=False,  # the tests that need the runtime layer build it when they ask
        execution_timeout_s=30,
        kernel_pool_size=0,
        interrupt_grace_s=3,
        health_check_interval_s=0.5,
        sandbox=sandbox_mode(),
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
