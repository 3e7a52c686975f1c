"""`Services`: the bundle the MCP layer uses, opened and closed as one unit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from python_mcp_server.config import ServerConfig
from python_mcp_server.kernels import KernelBackend, LocalBackend
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.services._kernel_ext import KERNEL_EXT_DIR, bootstrap_code
from python_mcp_server.services.environment import EnvironmentService
from python_mcp_server.services.execution import ExecutionService
from python_mcp_server.services.files_kernel import FilesKernel
from python_mcp_server.services.health import HealthService
from python_mcp_server.services.introspection import IntrospectionService
from python_mcp_server.services.notebooks import NotebookService
from python_mcp_server.services.packages import PackageService
from python_mcp_server.services.remote_scripts import RemoteScriptRunner
from python_mcp_server.services.remote_workspace import RemoteWorkspace
from python_mcp_server.services.sandboxing import (
    SandboxRuntime,
    check_network_settings,
    egress_proxy,
    give_workspace_to_sandbox,
    sandbox_factory,
)
from python_mcp_server.services.scripts import ScriptService
from python_mcp_server.services.sessions import SessionManager
from python_mcp_server.workspace.access import WorkspaceFiles
from python_mcp_server.workspace.manager import WorkspaceManager
from python_mcp_server.workspace.scripts import ScriptRunner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    config: ServerConfig
    sessions: SessionManager
    execution: ExecutionService
    introspection: IntrospectionService
    packages: PackageService
    environment: EnvironmentService
    workspace: WorkspaceFiles
    scripts: ScriptService
    health: HealthService
    notebooks: NotebookService

    @classmethod
    @asynccontextmanager
    async def open(
        cls, config: ServerConfig, backend: KernelBackend | None = None
    ) -> AsyncIterator[Services]:
        """Start the services; on exit every kernel is shut down. Raises ConfigError when
        `--sandbox on` cannot be honoured."""
        plan = plan_sandbox(config)
        check_network_settings(config)
        log = logger.info if plan.enabled and not plan.missing() else logger.warning
        log("%s", plan.summary())
        async with egress_proxy(plan, config) as proxy:
            runtime = SandboxRuntime(plan, proxy)
            async with cls._open(config, runtime, backend) as services:
                yield services

    @classmethod
    @asynccontextmanager
    async def _open(
        cls, config: ServerConfig, sandbox: SandboxRuntime, backend: KernelBackend | None
    ) -> AsyncIterator[Services]:
        backend = backend or kernel_backend(config, sandbox)
        try:
            owner = sandbox.workspace_owner
            if owner is not None and not backend.remote:
                give_workspace_to_sandbox(config.workspace_root)
            async with (
                SessionManager(config, backend, sandbox=sandbox) as sessions,
                _files(config, backend, sessions, owner) as (workspace, scripts),
            ):
                yield cls(
                    config=config,
                    sessions=sessions,
                    execution=ExecutionService(config, sessions, workspace),
                    introspection=IntrospectionService(config, sessions),
                    packages=PackageService(config, sessions),
                    environment=EnvironmentService(config, sessions),
                    workspace=workspace,
                    scripts=scripts,
                    health=HealthService(config, sessions),
                    notebooks=NotebookService(config, sessions, workspace),
                )
        finally:
            await backend.aclose()


@asynccontextmanager
async def _files(
    config: ServerConfig,
    backend: KernelBackend,
    sessions: SessionManager,
    owner: tuple[int, int] | None,
) -> AsyncIterator[tuple[WorkspaceFiles, ScriptService]]:
    """The workspace and scripts: on this server's disk, or, for kernels on a gateway, where
    they are, through a kernel there (started on first use, shut down on exit)."""
    if backend.remote:
        kernel = FilesKernel(backend, sessions.kernels.spec)
        try:
            remote = RemoteWorkspace(config, kernel)
            runner = RemoteScriptRunner(config, remote)
            yield remote, ScriptService(config, runner, None)
        finally:
            await kernel.aclose()
        return
    workspace = WorkspaceManager.open(config, owner)
    local = ScriptRunner(
        config,
        workspace,
        backend.jail_factory(),
        backend.confinement(
            config.kernel_python,
            config.workspace_root,
            sessions.kernels.default_limits,
            KERNEL_EXT_DIR / "script_supervisor.py",
        ),
    )
    yield workspace, ScriptService(config, local, sessions.environments)


def kernel_backend(config: ServerConfig, sandbox: SandboxRuntime) -> KernelBackend:
    """Kernels on the gateway `--kernel-gateway-url` names, else on this machine."""
    if config.kernel_gateway_url is None:
        return LocalBackend(sandbox=sandbox_factory(sandbox.plan, config, sandbox.proxy))
    # imported only here: the gateway's client (httpx, websockets) would slow every start
    from python_mcp_server.kernels.gateway import GatewayBackend
    from python_mcp_server.kernels.gateway_client import GatewaySettings

    settings = GatewaySettings(
        url=config.kernel_gateway_url,
        token=config.kernel_gateway_token,
        kernel_name=config.kernel_gateway_kernel,
        username=config.kernel_gateway_user,
        workdir=config.kernel_gateway_workdir,
        connect_timeout_s=config.kernel_gateway_connect_timeout_s,
        retries=config.kernel_gateway_retries,
    )
    logger.info("kernels run on the gateway at %s", settings.shown)
    return GatewayBackend(settings, bootstrap_code())
