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
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, fields
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import typer

from python_mcp_server import __version__
from python_mcp_server.auth_token import check_exposure, hide_token, resolve_token
from python_mcp_server.config import SECRET_ENV_VARS, ServerConfig
from python_mcp_server.errors import ConfigError

ENV = "PYTHON_MCP_SERVER_"
_DEFAULTS = ServerConfig()


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


def env_var(flag: str) -> str:
    """The environment variable of `flag`: `--kernel-tmp-mb` -> PYTHON_MCP_SERVER_KERNEL_TMP_MB."""
    return ENV + flag.removeprefix("--").upper().replace("-", "_")


def _option(flag: str, text: str, **kwargs: Any) -> Any:
    """`flag` (for a switch, `--name/--no-name`), settable by its environment variable too."""
    return typer.Option(flag, envvar=env_var(flag.split("/")[0]), help=text, **kwargs)


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


def config_json(config: ServerConfig) -> str:
    values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    if values.get("auth_token"):
        values["auth_token"] = "***"
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


TransportOption = Annotated[
    TransportChoice,
    _option(
        "--transport",
        "'http' serves streamable HTTP; 'stdio' serves one desktop client over standard input "
        "and output.",
    ),
]
HostOption = Annotated[
    str, _option("--host", "Address to bind. A non-loopback address needs a token.")
]
PortOption = Annotated[
    int, _option("--port", "TCP port for HTTP (0: any free port; the log names it).", min=0)
]
PathOption = Annotated[str, _option("--path", "URL path of the MCP endpoint.")]
WorkspaceDirOption = Annotated[
    Path,
    typer.Option(
        "--workspace-dir",
        envvar=[env_var("--workspace-dir"), "MCP_WORKSPACE_DIR"],
        help="Folder the kernels work in and the file tools are confined to; created if missing.",
    ),
]
ExecutionTimeoutOption = Annotated[
    float,
    _option(
        "--execution-timeout",
        "Default seconds a cell may run before it is interrupted.",
        min=0.1,
    ),
]
MaxSessionsOption = Annotated[
    int, _option("--max-sessions", "Most kernel sessions alive at once.", min=1)
]
SessionIdleTimeoutOption = Annotated[
    float,
    _option(
        "--session-idle-timeout",
        "Seconds a session may go unused before it is shut down (0 = never).",
        min=0,
    ),
]
KernelPoolSizeOption = Annotated[
    int,
    _option(
        "--kernel-pool-size",
        "Kernels kept started in advance so new sessions start at once (0 = none).",
        min=0,
    ),
]
MaxOutputCharsOption = Annotated[
    int,
    _option(
        "--max-output-chars",
        "Characters of stdout, stderr or result returned inline; the rest goes to a file.",
        min=200,
    ),
]
MaxOutputsMbOption = Annotated[
    int,
    _option(
        "--max-outputs-mb",
        "MB all live sessions' output files (long output, full-size images) may take; a file "
        "past it is not kept and the result says so (0 = no limit).",
        min=0,
    ),
]
MinFreeMemoryMbOption = Annotated[
    int,
    _option(
        "--min-free-memory-mb",
        "Refuse new sessions when the host has less memory available than this.",
        min=0,
    ),
]
LogLevelOption = Annotated[
    str, _option("--log-level", "DEBUG, INFO, WARNING or ERROR. Logs go to stderr.")
]
AuthTokenOption = Annotated[
    str | None,
    _option(
        "--auth-token",
        "Require 'Authorization: Bearer <token>' on HTTP requests; needed when --host is not a "
        "loopback address (then at least 16 characters). Every local user can read a command "
        "line: prefer --auth-token-file.",
    ),
]
AuthTokenFileOption = Annotated[
    Path | None,
    _option(
        "--auth-token-file",
        "Read the token from the first line of this file, which only this user may read "
        "(chmod 600).",
    ),
]
SandboxOption = Annotated[
    SandboxChoice,
    _option(
        "--sandbox",
        "Run kernels in a sandbox (bubblewrap): 'auto' where the host allows it, 'on' refuses "
        "to start without every protection, 'off' runs code with this server's own rights.",
    ),
]
KernelMemoryOption = Annotated[
    int,
    _option(
        "--kernel-memory-mb",
        "Memory one session's kernel and its processes may use, in MB (0 = no limit).",
        min=0,
    ),
]
KernelProcessesOption = Annotated[
    int,
    _option(
        "--kernel-max-processes",
        "Processes and threads one session may run at once (0 = no limit).",
        min=0,
    ),
]
KernelCpusOption = Annotated[
    float | None,
    _option("--kernel-cpus", "CPU quota per session, in CPUs (e.g. 1.5).", min=0.01),
]
KernelTmpOption = Annotated[
    int,
    _option(
        "--kernel-tmp-mb",
        "Size of a sandboxed kernel's private /tmp (and of its /dev/shm), in MB.",
        min=1,
    ),
]
KernelNetworkOption = Annotated[
    NetworkChoice,
    _option(
        "--kernel-network",
        "What sandboxed kernels may reach: 'none', 'allowlist' (only --kernel-allow-host "
        "names, through the server's proxy) or 'full'.",
    ),
]
KernelAllowHostOption = Annotated[
    list[str] | None,
    _option(
        "--kernel-allow-host",
        "A host kernels may reach with --kernel-network allowlist: NAME, NAME:PORT or "
        "*.DOMAIN; repeat the flag for more.",
    ),
]
InstallAllowHostOption = Annotated[
    list[str] | None,
    _option(
        "--install-allow-host",
        "A host the sandboxed package installer may reach besides the package indexes "
        "its environment names (UV_INDEX_URL...): NAME, NAME:PORT or *.DOMAIN; repeatable.",
    ),
]
InterruptGraceOption = Annotated[
    float,
    _option(
        "--interrupt-grace",
        "Seconds a cell gets to stop after an interrupt (timeout, cancel) before its kernel "
        "is restarted.",
        min=0.1,
    ),
]
KernelStartTimeoutOption = Annotated[
    float, _option("--kernel-start-timeout", "Seconds a kernel may take to start.", min=1)
]
HealthCheckIntervalOption = Annotated[
    float,
    _option(
        "--health-check-interval",
        "Seconds between checks of idle kernels (a dead or silent one is replaced) and of "
        "idle sessions.",
        min=0.1,
    ),
]
KernelProbeTimeoutOption = Annotated[
    float,
    _option("--kernel-probe-timeout", "Seconds an idle kernel has to answer a check.", min=0.1),
]
KernelProbeFailuresOption = Annotated[
    int,
    _option(
        "--kernel-probe-failures",
        "Checks in a row an idle kernel may fail before it is restarted.",
        min=1,
    ),
]
ScriptTimeoutOption = Annotated[
    float,
    _option(
        "--script-timeout",
        "Most seconds run_script lets a script run (a call may ask for less).",
        min=0.1,
    ),
]
InstallTimeoutOption = Annotated[
    float,
    _option(
        "--install-timeout",
        "Seconds install_dependencies lets the installer run when the call names no limit.",
        min=1,
    ),
]
AllowLocalPackagesOption = Annotated[
    bool,
    _option(
        "--allow-local-package-paths/--no-allow-local-package-paths",
        "Let install_dependencies install paths and archives in the workspace, not only "
        "packages from the index.",
    ),
]
MaxFileReadOption = Annotated[
    int, _option("--max-file-read-bytes", "Largest chunk read_file returns, in bytes.", min=1)
]
MaxFileWriteOption = Annotated[
    int, _option("--max-file-write-bytes", "Largest file write_file accepts, in bytes.", min=1)
]
MaxResourceOption = Annotated[
    int,
    _option("--max-resource-bytes", "Largest file served as an MCP resource, in bytes.", min=1),
]
MaxListEntriesOption = Annotated[
    int,
    _option("--max-list-entries", "Most entries list_files and list_variables return.", min=1),
]
ImageMaxSideOption = Annotated[
    int,
    _option(
        "--image-max-side-px",
        "Longest side of an inline image preview, in pixels (the full image is a file).",
        min=16,
    ),
]
ImageMaxBytesOption = Annotated[
    int,
    _option("--image-max-bytes", "Largest inline image preview, in bytes.", min=1000),
]
ProgressKeepaliveOption = Annotated[
    float,
    _option(
        "--progress-keepalive",
        "Seconds a streaming cell may be silent before a keepalive progress notification.",
        min=0.1,
    ),
]
KernelPythonOption = Annotated[
    str | None,
    _option(
        "--kernel-python",
        "Interpreter the kernels and scripts run (it needs ipykernel); default: this server's own.",
    ),
]
EnvDirOption = Annotated[
    Path | None,
    _option(
        "--env-dir",
        "Where sessions' own environments live (create_session with dependencies); "
        "default ~/.cache/python-mcp-server/envs. Best on the file system of uv's cache.",
    ),
]
EnvKeepOption = Annotated[
    float,
    _option(
        "--env-keep",
        "Seconds an environment no session uses is kept, so a recreated session is fast.",
        min=0,
    ),
]
EnvMaxOption = Annotated[
    int,
    _option(
        "--env-max-mb",
        "Disk the environments may take beyond uv's cache, in MB (0 = no bound).",
        min=0,
    ),
]
EnvPrebuildOption = Annotated[
    bool,
    _option(
        "--env-prebuild/--no-env-prebuild",
        "At start, build the kernel runtime layer that sessions' own environments share, in the "
        "background from uv's cache, so the first such session need not wait for it.",
    ),
]
HeaderTimeoutOption = Annotated[
    float,
    _option(
        "--header-timeout",
        "Seconds an HTTP client has to send a request's headers before its connection is closed.",
        min=0.1,
    ),
]
BodyTimeoutOption = Annotated[
    float,
    _option(
        "--body-timeout",
        "Seconds an HTTP client has to send a request's whole body (answered 408 after).",
        min=0.1,
    ),
]
MaxConnectionsOption = Annotated[
    int,
    _option(
        "--max-connections",
        "Most HTTP connections held at once (fewer if the open-files limit is lower); past "
        "it idle connections are closed, and when none is idle requests get 503.",
        min=1,
    ),
]
MaxMcpSessionsOption = Annotated[
    int,
    _option(
        "--max-mcp-sessions",
        "Most 2025-11-25 MCP sessions (Mcp-Session-Id) kept; a new one ends the oldest "
        "unused or longest idle session that is not serving a request.",
        min=1,
    ),
]
McpSessionUnusedTimeoutOption = Annotated[
    float,
    _option(
        "--mcp-session-unused-timeout",
        "Seconds a 2025-11-25 MCP session may go without a call after initialize before "
        "it is ended.",
        min=0.1,
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
    show_config: ShowConfigOption = False,
    version: VersionOption = False,
) -> None:
    """Serve Python code execution in Jupyter kernels over MCP."""
    settings = dict(locals())
    try:
        token = resolve_token(auth_token, auth_token_file, workspace_dir.expanduser().resolve())
    except ConfigError as exc:
        _refuse(str(exc))
    for name in SECRET_ENV_VARS:  # read: no kernel, script or installer may inherit them
        os.environ.pop(name, None)
    config = build_config(settings, token)
    if show_config:
        typer.echo(config_json(config))
        raise typer.Exit
    refusal = check_exposure(config)
    if refusal:
        typer.echo(refusal, err=True)
        raise typer.Exit(code=2)
    _serve(config)


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


def _serve(config: ServerConfig) -> None:
    """Serve until stopped; a setting the host cannot honour ends with one line, not a trace."""
    configure_logging(config.log_level)
    problem = prepare_workspace(config.workspace_root)
    if problem is not None:
        _refuse(problem)
    if config.auth_token:
        hide_token(config.auth_token)
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
    app()
