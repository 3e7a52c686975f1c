"""The command line: flags and environment variables -> `ServerConfig` -> `launch.run(config)`."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import anyio
import typer

from python_mcp_server import __version__
from python_mcp_server.config import ServerConfig, is_loopback_host
from python_mcp_server.errors import ConfigError
from python_mcp_server.launch import run as run_server

ENV = "PYTHON_MCP_SERVER_"

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


class TransportChoice(StrEnum):
    http = "http"
    stdio = "stdio"


class SandboxChoice(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


class NetworkChoice(StrEnum):
    none = "none"
    allowlist = "allowlist"
    full = "full"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"python-mcp-server {__version__}")
        raise typer.Exit


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("traitlets", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def check_exposure(config: ServerConfig) -> str | None:
    """Why this config must not start, or None. Code execution open to a network needs a token."""
    if config.transport == "http" and not is_loopback_host(config.host) and not config.auth_token:
        return (
            f"Refusing to serve on {config.host!r} without a token: anyone who can reach this port "
            "could run code on this machine. Pass --auth-token <secret> (or set "
            f"{ENV}AUTH_TOKEN), or bind a loopback address such as --host 127.0.0.1."
        )
    return None


def config_json(config: ServerConfig) -> str:
    values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    if values.get("auth_token"):
        values["auth_token"] = "***"
    values["workspace_root"] = str(config.workspace_root)
    return json.dumps(values, indent=2)


TransportOption = Annotated[
    TransportChoice,
    typer.Option(
        envvar=f"{ENV}TRANSPORT",
        help="'http' serves streamable HTTP; 'stdio' serves one "
        "desktop client over standard input and output.",
    ),
]
HostOption = Annotated[
    str,
    typer.Option(
        envvar=f"{ENV}HOST", help="Address to bind. A non-loopback address needs --auth-token."
    ),
]
PortOption = Annotated[
    int, typer.Option(envvar=f"{ENV}PORT", min=1, max=65535, help="TCP port for HTTP.")
]
PathOption = Annotated[str, typer.Option(envvar=f"{ENV}PATH", help="URL path of the MCP endpoint.")]
WorkspaceDirOption = Annotated[
    Path,
    typer.Option(
        envvar=[f"{ENV}WORKSPACE_DIR", "MCP_WORKSPACE_DIR"],
        help="Folder the kernels work in and the file tools are confined to; created if missing.",
    ),
]
ExecutionTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar=f"{ENV}EXECUTION_TIMEOUT",
        min=0.1,
        help="Default seconds a cell may run before it is interrupted.",
    ),
]
MaxSessionsOption = Annotated[
    int,
    typer.Option(envvar=f"{ENV}MAX_SESSIONS", min=1, help="Most kernel sessions alive at once."),
]
SessionIdleTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar=f"{ENV}SESSION_IDLE_TIMEOUT",
        min=0,
        help="Seconds a session may go unused before it is shut down (0 = never).",
    ),
]
KernelPoolSizeOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}KERNEL_POOL_SIZE",
        min=0,
        help="Kernels kept started in advance so new sessions start at once (0 = none).",
    ),
]
MaxOutputCharsOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}MAX_OUTPUT_CHARS",
        min=200,
        help="Characters of stdout, stderr or result returned inline; the rest goes to a file.",
    ),
]
MinFreeMemoryMbOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}MIN_FREE_MEMORY_MB",
        min=0,
        help="Refuse new sessions when the host has less memory available than this.",
    ),
]
LogLevelOption = Annotated[
    str,
    typer.Option(
        envvar=f"{ENV}LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR. Logs go to stderr."
    ),
]
AuthTokenOption = Annotated[
    str | None,
    typer.Option(
        envvar=f"{ENV}AUTH_TOKEN",
        help="Require 'Authorization: Bearer <token>' on HTTP "
        "requests. Required when --host is not a loopback address.",
    ),
]
SandboxOption = Annotated[
    SandboxChoice,
    typer.Option(
        envvar=f"{ENV}SANDBOX",
        help="Run kernels in a sandbox (bubblewrap): 'auto' where the host allows it, 'on' refuses "
        "to start without every protection, 'off' runs code with this server's own rights.",
    ),
]
KernelMemoryOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}KERNEL_MEMORY_MB",
        min=0,
        help="Memory one session's kernel and its processes may use, in MB (0 = no limit).",
    ),
]
KernelProcessesOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}KERNEL_MAX_PROCESSES",
        min=0,
        help="Processes and threads one session may run at once (0 = no limit).",
    ),
]
KernelCpusOption = Annotated[
    float | None,
    typer.Option(
        envvar=f"{ENV}KERNEL_CPUS", min=0.01, help="CPU quota per session, in CPUs (e.g. 1.5)."
    ),
]
KernelTmpOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}KERNEL_TMP_MB",
        min=1,
        help="Size of a sandboxed kernel's private /tmp (and of its /dev/shm), in MB.",
    ),
]
KernelNetworkOption = Annotated[
    NetworkChoice,
    typer.Option(
        envvar=f"{ENV}KERNEL_NETWORK",
        help="What sandboxed kernels may reach: 'none', 'allowlist' (only --kernel-allow-host "
        "names, through the server's proxy) or 'full'.",
    ),
]
KernelAllowHostOption = Annotated[
    list[str] | None,
    typer.Option(
        envvar=f"{ENV}KERNEL_ALLOW_HOST",
        help="A host kernels may reach with --kernel-network allowlist: NAME, NAME:PORT or "
        "*.DOMAIN; repeat the flag for more.",
    ),
]
HeaderTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar=f"{ENV}HEADER_TIMEOUT",
        min=0.1,
        help="Seconds an HTTP client has to send a request's headers before its connection is "
        "closed.",
    ),
]
BodyTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar=f"{ENV}BODY_TIMEOUT",
        min=0.1,
        help="Seconds an HTTP client has to send a request's whole body (answered 408 after).",
    ),
]
MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}MAX_CONNECTIONS",
        min=1,
        help="Most HTTP connections held at once (fewer if the open-files limit is lower); past "
        "it idle connections are closed, and when none is idle requests get 503.",
    ),
]
MaxMcpSessionsOption = Annotated[
    int,
    typer.Option(
        envvar=f"{ENV}MAX_MCP_SESSIONS",
        min=1,
        help="Most 2025-11-25 MCP sessions (Mcp-Session-Id) kept; a new one ends the oldest "
        "unused or longest idle session that is not serving a request.",
    ),
]
McpSessionUnusedTimeoutOption = Annotated[
    float,
    typer.Option(
        envvar=f"{ENV}MCP_SESSION_UNUSED_TIMEOUT",
        min=0.1,
        help="Seconds a 2025-11-25 MCP session may go without a call after initialize before "
        "it is ended.",
    ),
]
ShowConfigOption = Annotated[
    bool,
    typer.Option(
        "--show-config",
        help="Print the resolved configuration as JSON and exit (the token is masked).",
    ),
]
VersionOption = Annotated[
    bool,
    typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
]


@app.command()
def run(
    transport: TransportOption = TransportChoice.http,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    path: PathOption = "/mcp",
    workspace_dir: WorkspaceDirOption = Path("workspace"),
    execution_timeout: ExecutionTimeoutOption = 60.0,
    max_sessions: MaxSessionsOption = 16,
    session_idle_timeout: SessionIdleTimeoutOption = 1800.0,
    kernel_pool_size: KernelPoolSizeOption = 1,
    max_output_chars: MaxOutputCharsOption = 20_000,
    min_free_memory_mb: MinFreeMemoryMbOption = 256,
    log_level: LogLevelOption = "INFO",
    auth_token: AuthTokenOption = None,
    sandbox: SandboxOption = SandboxChoice.auto,
    kernel_memory_mb: KernelMemoryOption = 4096,
    kernel_max_processes: KernelProcessesOption = 256,
    kernel_cpus: KernelCpusOption = None,
    kernel_tmp_mb: KernelTmpOption = 1024,
    kernel_network: KernelNetworkOption = NetworkChoice.none,
    kernel_allow_host: KernelAllowHostOption = None,
    header_timeout: HeaderTimeoutOption = 10.0,
    body_timeout: BodyTimeoutOption = 30.0,
    max_connections: MaxConnectionsOption = 1024,
    max_mcp_sessions: MaxMcpSessionsOption = 256,
    mcp_session_unused_timeout: McpSessionUnusedTimeoutOption = 60.0,
    show_config: ShowConfigOption = False,
    version: VersionOption = False,
) -> None:
    """Serve Python code execution in Jupyter kernels over MCP."""
    level = log_level.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise typer.BadParameter(
            f"unknown level {log_level!r}; use DEBUG, INFO, WARNING or ERROR",
            param_hint="--log-level",
        )
    if auth_token is not None and auth_token != auth_token.strip():
        raise typer.BadParameter(
            "the token has leading or trailing spaces, which a Bearer header cannot carry; "
            "remove them",
            param_hint="--auth-token",
        )
    config = ServerConfig(
        workspace_dir=workspace_dir,
        transport=transport.value,
        host=host,
        port=port,
        path=path if path.startswith("/") else f"/{path}",
        execution_timeout_s=execution_timeout,
        max_sessions=max_sessions,
        session_idle_timeout_s=session_idle_timeout,
        kernel_pool_size=kernel_pool_size,
        max_output_chars=max_output_chars,
        min_free_memory_mb=min_free_memory_mb,
        log_level=level,
        auth_token=auth_token or None,
        sandbox=sandbox.value,
        kernel_memory_mb=kernel_memory_mb,
        kernel_max_processes=kernel_max_processes,
        kernel_cpus=kernel_cpus,
        kernel_tmp_mb=kernel_tmp_mb,
        kernel_network=kernel_network.value,
        kernel_allow_hosts=tuple(kernel_allow_host or ()),
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_connections=max_connections,
        max_mcp_sessions=max_mcp_sessions,
        mcp_session_unused_timeout_s=mcp_session_unused_timeout,
    )
    if show_config:
        typer.echo(config_json(config))
        raise typer.Exit
    refusal = check_exposure(config)
    if refusal:
        typer.echo(refusal, err=True)
        raise typer.Exit(code=2)
    _serve(config)


def _serve(config: ServerConfig) -> None:
    """Serve until stopped; a setting the host cannot honour ends with one line, not a trace."""
    configure_logging(config.log_level)
    try:
        config.workspace_root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(run_server, config)
    except (ConfigError, BaseExceptionGroup) as exc:
        refusal = _config_error(exc)
        if refusal is None:
            raise
        typer.echo(f"python-mcp-server: {refusal}", err=True)
        raise typer.Exit(code=2) from None


def _config_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError in `exc`, also when a task group wrapped it."""
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _config_error(inner)
            if found is not None:
                return found
    return None


def main() -> None:
    app()
