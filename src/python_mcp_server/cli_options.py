"""The command line's flags: one `Annotated` option per `ServerConfig` setting, each settable by
its environment variable `PYTHON_MCP_SERVER_<FLAG>` (see `cli`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from python_mcp_server import __version__

ENV = "PYTHON_MCP_SERVER_"


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
    int,
    _option("--port", "TCP port for HTTP (0: any free port; the log names it).", min=0, max=65535),
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
OneshotOutputsKeepOption = Annotated[
    float,
    _option(
        "--oneshot-outputs-keep",
        "Seconds the output files of a one-shot run (execute_python) are kept after it, so "
        "the kernel:// links of its result can be read (0 = deleted with its kernel).",
        min=0,
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
KernelGatewayUrlOption = Annotated[
    str | None,
    _option(
        "--kernel-gateway-url",
        "Run kernels on this Jupyter gateway (Kernel Gateway, Enterprise Gateway), e.g. "
        "http://gateway:8888, instead of on this machine. See docs/deploy.md.",
    ),
]
KernelGatewayTokenOption = Annotated[
    str | None,
    _option(
        "--kernel-gateway-token",
        "The gateway's token (its KG_AUTH_TOKEN or EG_AUTH_TOKEN). Every local user can read a "
        "command line: prefer --kernel-gateway-token-file or the environment variable.",
    ),
]
KernelGatewayTokenFileOption = Annotated[
    Path | None,
    _option(
        "--kernel-gateway-token-file",
        "Read the gateway's token from the first line of this file, which only this user may "
        "read (chmod 600).",
    ),
]
KernelGatewayKernelOption = Annotated[
    str, _option("--kernel-gateway-kernel", "The gateway's kernelspec to start kernels from.")
]
KernelGatewayUserOption = Annotated[
    str,
    _option(
        "--kernel-gateway-user",
        "KERNEL_USERNAME sent with each kernel start (Enterprise Gateway authorizes by it and "
        "refuses root).",
    ),
]
KernelGatewayWorkdirOption = Annotated[
    str | None,
    _option(
        "--kernel-gateway-workdir",
        "The kernels' working folder on the gateway's side (Kernel Gateway: relative to its "
        "root_dir; Enterprise Gateway: KERNEL_WORKING_DIR), e.g. the shared volume's mount.",
    ),
]
KernelGatewayConnectTimeoutOption = Annotated[
    float,
    _option(
        "--kernel-gateway-connect-timeout",
        "Seconds to wait for a connection to the gateway before trying again.",
        min=0.1,
    ),
]
KernelGatewayRetriesOption = Annotated[
    int,
    _option(
        "--kernel-gateway-retries",
        "How many times a request that could not reach the gateway is tried again, with a "
        "growing pause (0.2 s, doubling).",
        min=0,
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
