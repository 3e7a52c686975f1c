"""`ServerConfig`: every setting as one frozen value, built by the CLI or by tests."""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Transport = Literal["http", "stdio"]
SandboxMode = Literal["auto", "on", "off"]
KernelNetwork = Literal["none", "allowlist", "full"]

# server settings that child processes (kernels, scripts, installers) must not inherit
SECRET_ENV_VARS = (
    "PYTHON_MCP_SERVER_AUTH_TOKEN",
    "PYTHON_MCP_SERVER_AUTH_TOKEN_FILE",
    "PYTHON_MCP_SERVER_KERNEL_GATEWAY_TOKEN",
    "PYTHON_MCP_SERVER_KERNEL_GATEWAY_TOKEN_FILE",
)

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_loopback_host(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Resolved settings. Durations are seconds; sizes are bytes or characters."""

    workspace_dir: Path = field(default_factory=lambda: Path("workspace"))
    transport: Transport = "http"
    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/mcp"
    execution_timeout_s: float = 60.0
    max_sessions: int = 16
    log_level: str = "INFO"
    auth_token: str | None = None
    kernel_python: str = field(default_factory=lambda: sys.executable)
    interrupt_grace_s: float = 3.0
    kernel_start_timeout_s: float = 60.0
    session_idle_timeout_s: float = 1800.0
    kernel_pool_size: int = 1
    min_free_memory_mb: int = 256
    health_check_interval_s: float = 2.0
    kernel_probe_timeout_s: float = 2.0
    kernel_probe_failures: int = 3
    max_output_chars: int = 20_000
    max_file_read_bytes: int = 1_000_000
    max_resource_bytes: int = 32_000_000
    max_outputs_mb: int = 1024  # all live sessions' output files together; 0 = no limit
    oneshot_outputs_keep_s: float = 300.0  # a one-shot run's output files, after the run
    max_file_write_bytes: int = 50_000_000
    max_list_entries: int = 500
    script_timeout_s: float = 300.0
    install_timeout_s: float = 300.0
    allow_local_package_paths: bool = False
    image_max_side_px: int = 1024
    image_max_bytes: int = 150_000
    progress_keepalive_s: float = 5.0
    sandbox: SandboxMode = "auto"
    kernel_memory_mb: int = 4096  # per session; 0 = no memory limit
    kernel_max_processes: int = 256  # per session; 0 = no process limit
    kernel_cpus: float | None = None  # CPU quota per session; None = no quota
    kernel_tmp_mb: int = 1024  # the private /tmp and /dev/shm of a sandboxed kernel
    kernel_network: KernelNetwork = "none"
    kernel_allow_hosts: tuple[str, ...] = ()
    install_allow_hosts: tuple[str, ...] = ()  # beyond the package indexes, for installs
    env_dir: Path | None = None  # per-session environments; None: ~/.cache/python-mcp-server/envs
    env_keep_s: float = 600.0  # how long an environment no session uses is kept
    env_max_mb: int = 10_000  # disk the environments may take beyond uv's cache; 0 = no bound
    env_prebuild: bool = True  # build the kernel runtime layer at start, in the background
    # HTTP connections: headers and bodies that do not arrive in time, how many are held
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1024
    # 2025-11-25 (handshake) MCP sessions: how many are kept, how long one may go without a call
    max_mcp_sessions: int = 256
    mcp_session_unused_timeout_s: float = 60.0
    # kernels on a Jupyter gateway (Kernel Gateway, Enterprise Gateway); None: on this machine
    kernel_gateway_url: str | None = None
    kernel_gateway_token: str | None = None
    kernel_gateway_kernel: str = "python3"  # the gateway's kernelspec
    kernel_gateway_user: str = "python-mcp-server"  # KERNEL_USERNAME
    kernel_gateway_workdir: str | None = None  # kernels' working folder on the gateway's side
    kernel_gateway_connect_timeout_s: float = 10.0
    kernel_gateway_retries: int = 3

    @property
    def workspace_root(self) -> Path:
        return self.workspace_dir.expanduser().resolve()

    @property
    def env_root(self) -> Path:
        folder = self.env_dir or Path("~/.cache/python-mcp-server/envs")
        return folder.expanduser().resolve()
