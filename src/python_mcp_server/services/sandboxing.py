"""The sandbox as the services use it: a factory for the kernel backend, and the workspace made
writable for the sandbox's uid."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.host import SANDBOX_UID, SandboxPlan
from python_mcp_server.sandbox.launch import Sandbox, write_etc
from python_mcp_server.services.models import KernelLimitsInfo, ProtectionInfo, SandboxInfo

logger = logging.getLogger(__name__)


def sandbox_factory(plan: SandboxPlan, config: ServerConfig) -> Callable[[Path], Sandbox] | None:
    """What the local backend calls with its runtime folder to make the sandbox, or None when
    kernels run plainly."""
    if not plan.enabled:
        return None

    def make(runtime_dir: Path) -> Sandbox:
        etc = write_etc(runtime_dir / "etc")
        return Sandbox(plan, etc, network=config.kernel_network, tmp_mb=config.kernel_tmp_mb)

    return make


def give_workspace_to_sandbox(root: Path) -> None:
    """Let sandboxed kernels (uid 65534) write the workspace folder. The server, as root, still
    reads, writes and deletes everything in it; files others own stay as they are."""
    try:
        st = root.stat()
        if st.st_uid == 0:
            os.chown(root, SANDBOX_UID, SANDBOX_UID)
    except OSError as exc:
        logger.warning("could not give the workspace %s to the sandbox uid: %s", root, exc)
    with contextlib.suppress(OSError):
        root.chmod(root.stat().st_mode | 0o700)


def sandbox_info(plan: SandboxPlan, config: ServerConfig) -> SandboxInfo:
    """The sandbox as get_environment_info and get_kernel_health report it."""
    return SandboxInfo(
        mode=config.sandbox,
        enabled=plan.enabled,
        protections=[
            ProtectionInfo(name=p.name, active=p.active, detail=p.detail) for p in plan.protections
        ],
        network=config.kernel_network if plan.enabled else "full",
        allowed_hosts=list(config.kernel_allow_hosts),
        default_limits=KernelLimitsInfo(
            memory_mb=config.kernel_memory_mb or None,
            max_processes=config.kernel_max_processes or None,
            cpus=config.kernel_cpus,
        ),
    )
