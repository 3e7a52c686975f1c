"""Shared fixtures. Fixtures build values (configs, folders); tests open their own clients."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from python_mcp_server.config import SandboxMode, ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox
from tests.gateway import GatewayOptions, GatewayUnavailableError, KernelGateway, gateway_venv

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


GATEWAY_FIXTURES = frozenset({"kernel_gateway", "culling_gateway", "start_kernel_gateway"})
_GATEWAY_VENV = pytest.StashKey["Path | BaseException"]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "config" in names or "workspace" in names:
            item.add_marker(pytest.mark.kernel)
        if GATEWAY_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.gateway)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the gateway's venv before the tests run, when any selected test needs it, so a
    first build that downloads packages is not counted against one test's timeout."""
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker("gateway") for item in session.items):
        _gateway_venv(session.config)


def in_ci() -> bool:
    """`CI` is set (and not 0/false): tests that cannot run here fail instead of skipping."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _gateway_venv(config: pytest.Config) -> Path | BaseException:
    if _GATEWAY_VENV not in config.stash:
        try:
            config.stash[_GATEWAY_VENV] = gateway_venv()
        except Exception as exc:  # noqa: BLE001 (raised by the fixture: collection must go on)
            config.stash[_GATEWAY_VENV] = exc
    return config.stash[_GATEWAY_VENV]


@pytest.fixture(scope="session")
def kernel_gateway_venv(request: pytest.FixtureRequest) -> Path:
    """Kernel Gateway 3's own venv (never the project's). Without a package index and with
    nothing cached, gateway tests skip, except under `CI`, where they fail."""
    outcome = _gateway_venv(request.config)
    if isinstance(outcome, GatewayUnavailableError):
        if in_ci():
            pytest.fail(f"{outcome} (CI is set, so this fails instead of skipping)")
        pytest.skip(str(outcome))
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@pytest.fixture(scope="session")
def kernel_gateway(
    kernel_gateway_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KernelGateway]:
    """One Kernel Gateway for the session: no culling, kernels listed, client env allowed.
    After each test that uses it, it is running again and holds no kernels."""
    gateway = KernelGateway(kernel_gateway_venv, tmp_path_factory.mktemp("kernel-gateway"))
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(autouse=True)
def _kernel_gateway_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "kernel_gateway" in request.fixturenames:
        gateway: KernelGateway = request.getfixturevalue("kernel_gateway")
        if gateway.running:
            gateway.resume()  # in case the test paused it
        else:
            gateway.start()
        gateway.delete_all_kernels()


@pytest.fixture
def start_kernel_gateway(
    kernel_gateway_venv: Path, tmp_path: Path
) -> Iterator[Callable[..., KernelGateway]]:
    """Starts gateways of the test's own, with `GatewayOptions` fields as keyword arguments;
    each is stopped (and its kernels deleted) at teardown."""
    started: list[KernelGateway] = []

    def start(**options: Any) -> KernelGateway:
        workdir = tmp_path / f"kernel-gateway-{len(started)}"
        workdir.mkdir()
        gateway = KernelGateway(kernel_gateway_venv, workdir, GatewayOptions(**options))
        started.append(gateway)
        gateway.start()
        return gateway

    yield start
    for gateway in started:
        gateway.close()


@pytest.fixture
def culling_gateway(start_kernel_gateway: Callable[..., KernelGateway]) -> KernelGateway:
    """A gateway of the test's own that culls kernels idle for 2 s, checking every second."""
    return start_kernel_gateway(cull_idle_timeout_s=2, cull_interval_s=1)
