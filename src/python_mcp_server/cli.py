"""The command line: flags and environment variables -> `ServerConfig` -> `launch.run(config)`.

Every setting of `ServerConfig` has a flag named after it (less the `_s` of seconds) whose
parameter here has the setting's name, and an environment variable `PYTHON_MCP_SERVER_<FLAG>`;
docs/configuration.md lists them all. `--version` and `--show-config` answer without importing
the server (FastMCP, jupyter_client, uvicorn): `launch` is imported only to serve.

The token's variables are removed from the environment once read, so that no kernel, script or
installer inherits them; `auth_token` has the rest of the token's rules.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import socket
import sys
import tempfile
from dataclasses import asdict, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import anyio
import typer

from python_mcp_server.auth_token import (
    check_exposure,
    check_gateway_url,
    hide_gateway_token,
    hide_token,
    resolve_gateway_token,
    resolve_token,
)
from python_mcp_server.cli_options import (
    AllowLocalPackagesOption,
    AuthTokenFileOption,
    AuthTokenOption,
    BodyTimeoutOption,
    EnvDirOption,
    EnvKeepOption,
    EnvMaxOption,
    EnvPrebuildOption,
    ExecutionTimeoutOption,
    HeaderTimeoutOption,
    HealthCheckIntervalOption,
    HostOption,
    ImageMaxBytesOption,
    ImageMaxSideOption,
    InstallAllowHostOption,
    InstallTimeoutOption,
    InterruptGraceOption,
    KernelAllowHostOption,
    KernelCpusOption,
    KernelGatewayConnectTimeoutOption,
    KernelGatewayKernelOption,
    KernelGatewayRetriesOption,
    KernelGatewayTokenFileOption,
    KernelGatewayTokenOption,
    KernelGatewayUrlOption,
    KernelGatewayUserOption,
    KernelGatewayWorkdirOption,
    KernelMemoryOption,
    KernelNetworkOption,
    KernelPoolSizeOption,
    KernelProbeFailuresOption,
    KernelProbeTimeoutOption,
    KernelProcessesOption,
    KernelPythonOption,
    KernelStartTimeoutOption,
    KernelTmpOption,
    LogLevelOption,
    MaxConnectionsOption,
    MaxFileReadOption,
    MaxFileWriteOption,
    MaxListEntriesOption,
    MaxMcpSessionsOption,
    MaxOutputCharsOption,
    MaxOutputsMbOption,
    MaxResourceOption,
    MaxSessionsOption,
    McpSessionUnusedTimeoutOption,
    MinFreeMemoryMbOption,
    NetworkChoice,
    OneshotOutputsKeepOption,
    PathOption,
    PortOption,
    ProgressKeepaliveOption,
    SandboxChoice,
    SandboxOption,
    ScriptTimeoutOption,
    SessionIdleTimeoutOption,
    ShowConfigOption,
    TransportChoice,
    TransportOption,
    VersionOption,
    WorkspaceDirOption,
    env_var,
)
from python_mcp_server.config import SECRET_ENV_VARS, ServerConfig
from python_mcp_server.errors import ConfigError

_DEFAULTS = ServerConfig()


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("traitlets", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def config_json(config: ServerConfig) -> str:
    values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    for secret in ("auth_token", "kernel_gateway_token"):
        if values.get(secret):
            values[secret] = "***"
    values["workspace_root"] = str(config.workspace_root)
    return json.dumps(values, indent=2)


def build_config(settings: dict[str, Any], token: str | None) -> ServerConfig:
    """The `ServerConfig` of the parsed flags, each named as its setting."""
    values = {f.name: settings[f.name] for f in fields(ServerConfig) if f.name in settings}
    values = {k: v.value if isinstance(v, StrEnum) else v for k, v in values.items()}
    level = str(values["log_level"]).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise typer.BadParameter(
            f"unknown level {values['log_level']!r}; use DEBUG, INFO, WARNING or ERROR",
            param_hint="--log-level",
        )
    path = str(values["path"])
    values.update(
        log_level=level,
        path=path if path.startswith("/") else f"/{path}",
        kernel_allow_hosts=tuple(values["kernel_allow_hosts"] or ()),
        install_allow_hosts=tuple(values["install_allow_hosts"] or ()),
        auth_token=token,
    )
    if values["kernel_python"] is None:
        del values["kernel_python"]
    return ServerConfig(**values)


@app.command()
def run(  # each parameter is named as the ServerConfig setting it sets
    transport: TransportOption = TransportChoice.http,
    host: HostOption = _DEFAULTS.host,
    port: PortOption = _DEFAULTS.port,
    path: PathOption = _DEFAULTS.path,
    workspace_dir: WorkspaceDirOption = _DEFAULTS.workspace_dir,
    execution_timeout_s: ExecutionTimeoutOption = _DEFAULTS.execution_timeout_s,
    max_sessions: MaxSessionsOption = _DEFAULTS.max_sessions,
    session_idle_timeout_s: SessionIdleTimeoutOption = _DEFAULTS.session_idle_timeout_s,
    kernel_pool_size: KernelPoolSizeOption = _DEFAULTS.kernel_pool_size,
    max_output_chars: MaxOutputCharsOption = _DEFAULTS.max_output_chars,
    max_outputs_mb: MaxOutputsMbOption = _DEFAULTS.max_outputs_mb,
    oneshot_outputs_keep_s: OneshotOutputsKeepOption = _DEFAULTS.oneshot_outputs_keep_s,
    min_free_memory_mb: MinFreeMemoryMbOption = _DEFAULTS.min_free_memory_mb,
    log_level: LogLevelOption = _DEFAULTS.log_level,
    auth_token: AuthTokenOption = None,
    auth_token_file: AuthTokenFileOption = None,
    sandbox: SandboxOption = SandboxChoice.auto,
    kernel_memory_mb: KernelMemoryOption = _DEFAULTS.kernel_memory_mb,
    kernel_max_processes: KernelProcessesOption = _DEFAULTS.kernel_max_processes,
    kernel_cpus: KernelCpusOption = _DEFAULTS.kernel_cpus,
    kernel_tmp_mb: KernelTmpOption = _DEFAULTS.kernel_tmp_mb,
    kernel_network: KernelNetworkOption = NetworkChoice.none,
    kernel_allow_hosts: KernelAllowHostOption = None,
    install_allow_hosts: InstallAllowHostOption = None,
    interrupt_grace_s: InterruptGraceOption = _DEFAULTS.interrupt_grace_s,
    kernel_start_timeout_s: KernelStartTimeoutOption = _DEFAULTS.kernel_start_timeout_s,
    health_check_interval_s: HealthCheckIntervalOption = _DEFAULTS.health_check_interval_s,
    kernel_probe_timeout_s: KernelProbeTimeoutOption = _DEFAULTS.kernel_probe_timeout_s,
    kernel_probe_failures: KernelProbeFailuresOption = _DEFAULTS.kernel_probe_failures,
    script_timeout_s: ScriptTimeoutOption = _DEFAULTS.script_timeout_s,
    install_timeout_s: InstallTimeoutOption = _DEFAULTS.install_timeout_s,
    allow_local_package_paths: AllowLocalPackagesOption = _DEFAULTS.allow_local_package_paths,
    max_file_read_bytes: MaxFileReadOption = _DEFAULTS.max_file_read_bytes,
    max_file_write_bytes: MaxFileWriteOption = _DEFAULTS.max_file_write_bytes,
    max_resource_bytes: MaxResourceOption = _DEFAULTS.max_resource_bytes,
    max_list_entries: MaxListEntriesOption = _DEFAULTS.max_list_entries,
    image_max_side_px: ImageMaxSideOption = _DEFAULTS.image_max_side_px,
    image_max_bytes: ImageMaxBytesOption = _DEFAULTS.image_max_bytes,
    progress_keepalive_s: ProgressKeepaliveOption = _DEFAULTS.progress_keepalive_s,
    kernel_python: KernelPythonOption = None,
    env_dir: EnvDirOption = _DEFAULTS.env_dir,
    env_keep_s: EnvKeepOption = _DEFAULTS.env_keep_s,
    env_max_mb: EnvMaxOption = _DEFAULTS.env_max_mb,
    env_prebuild: EnvPrebuildOption = _DEFAULTS.env_prebuild,
    header_timeout_s: HeaderTimeoutOption = _DEFAULTS.header_timeout_s,
    body_timeout_s: BodyTimeoutOption = _DEFAULTS.body_timeout_s,
    max_connections: MaxConnectionsOption = _DEFAULTS.max_connections,
    max_mcp_sessions: MaxMcpSessionsOption = _DEFAULTS.max_mcp_sessions,
    mcp_session_unused_timeout_s: McpSessionUnusedTimeoutOption = (
        _DEFAULTS.mcp_session_unused_timeout_s
    ),
    kernel_gateway_url: KernelGatewayUrlOption = None,
    kernel_gateway_token: KernelGatewayTokenOption = None,
    kernel_gateway_token_file: KernelGatewayTokenFileOption = None,
    kernel_gateway_kernel: KernelGatewayKernelOption = _DEFAULTS.kernel_gateway_kernel,
    kernel_gateway_user: KernelGatewayUserOption = _DEFAULTS.kernel_gateway_user,
    kernel_gateway_workdir: KernelGatewayWorkdirOption = None,
    kernel_gateway_connect_timeout_s: KernelGatewayConnectTimeoutOption = (
        _DEFAULTS.kernel_gateway_connect_timeout_s
    ),
    kernel_gateway_retries: KernelGatewayRetriesOption = _DEFAULTS.kernel_gateway_retries,
    show_config: ShowConfigOption = False,
    version: VersionOption = False,
) -> None:
    """Serve Python code execution in Jupyter kernels over MCP."""
    settings = dict(locals())
    token = _read_secrets(settings)
    config = build_config(settings, token)
    if show_config:
        typer.echo(config_json(config))
        raise typer.Exit
    refusal = check_exposure(config)
    if refusal:
        typer.echo(refusal, err=True)
        raise typer.Exit(code=2)
    _serve(config)


def _read_secrets(settings: dict[str, Any]) -> str | None:
    """The server's token; the gateway's token and URL checked into `settings`. Their
    variables are then removed: no kernel, script or installer may inherit them."""
    root = Path(settings["workspace_dir"]).expanduser().resolve()
    try:
        token = resolve_token(settings["auth_token"], settings["auth_token_file"], root)
        settings["kernel_gateway_token"] = resolve_gateway_token(
            settings["kernel_gateway_token"], settings["kernel_gateway_token_file"], root
        )
        settings["kernel_gateway_url"] = check_gateway_url(settings["kernel_gateway_url"])
    except ConfigError as exc:
        _refuse(str(exc))
    for name in SECRET_ENV_VARS:
        os.environ.pop(name, None)
    return token


def _refuse(message: str) -> NoReturn:
    typer.echo(f"python-mcp-server: {message}", err=True)
    raise typer.Exit(code=2)


def prepare_workspace(root: Path) -> str | None:
    """Create the workspace folder and check that this user can write in it; what is wrong, or
    None."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        if isinstance(exc, FileExistsError):
            why = "it is a file, not a folder"
        elif isinstance(exc, NotADirectoryError):
            why = "a part of its path is a file, not a folder"
        else:
            why = (exc.strerror or str(exc)).lower()
        return (
            f"cannot use --workspace-dir {root}: {why}; pass --workspace-dir (or set "
            f"{env_var('--workspace-dir')}) with a folder this user can create and write in"
        )
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why the HTTP server could not listen on `host`:`port`, found before anything starts by
    binding there as uvicorn does and letting go; None when it can (or for port 0, any free one).
    An error not named here is left to uvicorn to report."""
    if port == 0:
        return None
    where = f"cannot serve on {host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except socket.gaierror as exc:
        return f"{where}: {host!r} does not resolve ({exc.strerror}); pass --host with an address"
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"{where}: the address is already in use (another process listens there, often a "
                "second copy of this server); stop it, or pass --port with another port (--port 0 "
                "picks a free one)"
            )
        if exc.errno == errno.EACCES:
            return (
                f"{where}: permission denied (a port below 1024 needs root or "
                "CAP_NET_BIND_SERVICE); pass --port with a port above 1023"
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{where}: this machine has no such address; pass --host with one of its own"
    return None


def _serve(config: ServerConfig) -> None:
    """Serve until stopped; a setting the host cannot honour ends with one line, not a trace."""
    configure_logging(config.log_level)
    problem = prepare_workspace(config.workspace_root)
    if problem is None and config.transport == "http":
        problem = port_problem(config.host, config.port)
    if problem is not None:
        _refuse(problem)
    if config.auth_token:
        hide_token(config.auth_token)
    if config.kernel_gateway_token:
        hide_gateway_token(config.kernel_gateway_token)
    from python_mcp_server.launch import run as run_server  # the server stack: only to serve

    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(run_server, config)
    except (ConfigError, BaseExceptionGroup) as exc:
        refusal = _config_error(exc)
        if refusal is None:
            raise
        _refuse(str(refusal))


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
    # Starting builds a few hundred thousand long-lived objects (the MCP types' pydantic schemas
    # above all); the cycle collector would scan them again and again for nothing, a fifth of
    # the start. `launch.run` freezes what the start built and turns it back on before serving.
    gc.disable()
    app()
