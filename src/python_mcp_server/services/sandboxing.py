"""The sandbox as the services use it: a factory for the kernel backend, and the workspace made
writable for the sandbox's uid."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import ConfigError
from python_mcp_server.sandbox import AllowList, EgressProxy
from python_mcp_server.sandbox.egress import proxy_folder
from python_mcp_server.sandbox.fonts import FontCache
from python_mcp_server.sandbox.host import SANDBOX_UID, SandboxPlan
from python_mcp_server.sandbox.launch import Sandbox, write_etc
from python_mcp_server.services.models import (
    KernelLimitsInfo,
    ProtectionInfo,
    RefusalInfo,
    SandboxInfo,
)

logger = logging.getLogger(__name__)

_SHOWN_REFUSALS = 10


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def sandbox_factory(
    plan: SandboxPlan, config: ServerConfig, proxy: EgressProxy | None = None
) -> Callable[[Path], Sandbox] | None:
    """What the local backend calls with its runtime folder to make the sandbox, or None when
    kernels run plainly."""
    if not plan.enabled:
        return None

    def make(runtime_dir: Path) -> Sandbox:
        etc = write_etc(runtime_dir / "etc")
        return Sandbox(
            plan,
            etc,
            network=config.kernel_network,
            tmp_mb=config.kernel_tmp_mb,
            proxy_socket=proxy.socket_path if proxy is not None else None,
            fonts=FontCache(config.kernel_python, config.env_root / "fonts"),
        )

    return make


def check_network_settings(config: ServerConfig) -> AllowList | None:
    """The allow-list to enforce (with --kernel-network allowlist), after checking the flags fit
    together; raises ConfigError naming the fix."""
    if config.kernel_allow_hosts and config.kernel_network != "allowlist":
        raise ConfigError(
            "--kernel-allow-host only applies with --kernel-network allowlist (it is "
            f"{config.kernel_network!r}); add --kernel-network allowlist, or drop the hosts."
        )
    if config.kernel_network != "allowlist":
        return None
    return AllowList.parse(list(config.kernel_allow_hosts))


@asynccontextmanager
async def egress_proxy(
    plan: SandboxPlan, config: ServerConfig
) -> AsyncIterator[EgressProxy | None]:
    """The proxy sandboxed kernels reach allowed hosts through, while the server runs."""
    allow = check_network_settings(config)
    if allow is None or not plan.enabled:
        yield None
        return
    folder = proxy_folder()
    try:
        async with EgressProxy(allow, folder / "egress.sock") as proxy:
            logger.info(
                "kernels reach the network only through the egress proxy, to: %s",
                ", ".join(config.kernel_allow_hosts) or "nothing (no --kernel-allow-host)",
            )
            yield proxy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def give_workspace_to_sandbox(root: Path) -> None:
    """Let sandboxed kernels (uid 65534) write the workspace folder. The server, as root, still
    reads, writes and deletes everything in it; files others own stay as they are."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        st = root.stat()
        if st.st_uid == 0:
            os.chown(root, SANDBOX_UID, SANDBOX_UID)
    except OSError as exc:
        logger.warning("could not give the workspace %s to the sandbox uid: %s", root, exc)
    with contextlib.suppress(OSError):
        root.chmod(root.stat().st_mode | 0o700)


def sandbox_info(
    plan: SandboxPlan, config: ServerConfig, proxy: EgressProxy | None = None
) -> SandboxInfo:
    """The sandbox as get_environment_info and get_kernel_health report it."""
    return SandboxInfo(
        refused_connections=proxy.refused_total if proxy is not None else 0,
        recent_refusals=[
            RefusalInfo(
                at=iso_utc(r.time), host=r.host, port=r.port, status=r.status, reason=r.reason
            )
            for r in (proxy.refused[-_SHOWN_REFUSALS:] if proxy is not None else [])
        ],
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


@dataclass(frozen=True)
class SandboxRuntime:
    """The sandbox while the server runs: the plan it was started with, and its egress proxy."""

    plan: SandboxPlan = field(default_factory=lambda: SandboxPlan(mode="off", enabled=False))
    proxy: EgressProxy | None = None

    @property
    def enabled(self) -> bool:
        return self.plan.enabled

    @property
    def workspace_owner(self) -> tuple[int, int] | None:
        """Who files the server creates for kernels must belong to (None: the server's user)."""
        if self.plan.enabled and self.plan.as_root:
            return (SANDBOX_UID, SANDBOX_UID)
        return None

    def info(self, config: ServerConfig) -> SandboxInfo:
        return sandbox_info(self.plan, config, self.proxy)
