"""The HTTP bearer token: where it may come from, when it is good enough, and where it must not stay.

A command line is readable by every local user (`ps`, `/proc/<pid>/cmdline`), so the token is
best read from a file only this user can read (`--auth-token-file`, refused otherwise). A token
from `PYTHON_MCP_SERVER_AUTH_TOKEN` is removed from the environment once read, so no kernel,
script or installer inherits it; and before serving, `hide_token` blanks a token given either of
those ways out of this process's `/proc` command line and environment.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

from python_mcp_server.config import ServerConfig, is_loopback_host
from python_mcp_server.errors import ConfigError
from python_mcp_server.procs.startup_text import blank_startup_secret

logger = logging.getLogger(__name__)

TOKEN_ENV = "PYTHON_MCP_SERVER_AUTH_TOKEN"  # noqa: S105 - the variable's name
MIN_PUBLIC_TOKEN_CHARS = 16  # a token guarding a non-loopback address
_FILE_MAX_BYTES = 65536
# `--auth-token --show-config` would otherwise take the next flag as the token. Only what looks
# like one of our flags: a random token may well start with '-'.
_FLAG_LIKE = re.compile(r"--[a-z][a-z-]*(=.*)?|-[A-Za-z]", re.DOTALL)


def read_token_file(path: Path, workspace_root: Path, flag: str = "--auth-token-file") -> str:
    """The first line of `path`, refused unless only this user can read the file, and it is
    outside the workspace (which every session's code and the file tools read)."""
    if path.expanduser().resolve().is_relative_to(workspace_root):
        raise ConfigError(
            f"{flag}: {path} is inside the workspace ({workspace_root}), where code "
            "run in the kernels and read_file can read it; keep the token file outside it"
        )
    try:
        with path.expanduser().open("rb") as f:
            info = os.fstat(f.fileno())
            data = f.read(_FILE_MAX_BYTES)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{flag}: {path} belongs to another user (uid {info.st_uid}), who can read "
            f"the token; give it to this user (chown {os.geteuid()} {path}) and run "
            f"chmod 600 {path}"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{flag}: other users can read or change {path} (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path} so that only this user can"
        )
    try:
        return data.split(b"\n", 1)[0].removesuffix(b"\r").decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{flag}: the first line of {path} is not UTF-8") from None


def resolve_token(value: str | None, file: Path | None, workspace_root: Path) -> str | None:
    """The token from `--auth-token` or `--auth-token-file` (or their variables), checked."""
    if value is not None and file is not None:
        raise ConfigError(
            "give the token one way only: --auth-token-file or --auth-token (or their "
            "environment variables), not both"
        )
    if file is not None:
        token, flag = read_token_file(file, workspace_root), "--auth-token-file"
    elif value is not None:
        token, flag = value, "--auth-token"
        if _FLAG_LIKE.fullmatch(value):
            raise ConfigError(
                f"--auth-token: {value!r} looks like a flag, not a token; give the token right "
                "after --auth-token, or better, put it in a file only you can read and pass "
                "--auth-token-file PATH"
            )
    else:
        return None
    if not token:
        raise ConfigError(f"{flag}: the token is empty")
    if token != token.strip():
        raise ConfigError(
            f"{flag}: the token has leading or trailing spaces, which a Bearer header cannot "
            "carry; remove them"
        )
    return token


def check_exposure(config: ServerConfig) -> str | None:
    """Why this config must not start, or None. Code execution open to a network needs a token
    that cannot be guessed; on a loopback address any token will do."""
    if config.transport != "http" or is_loopback_host(config.host):
        return None
    if not config.auth_token:
        return (
            f"Refusing to serve on {config.host!r} without a token: anyone who can reach this port "
            "could run code on this machine. Pass --auth-token-file PATH (a file only this user "
            f"can read, holding the token; or set {TOKEN_ENV}), or bind a loopback address such "
            "as --host 127.0.0.1."
        )
    if len(config.auth_token) < MIN_PUBLIC_TOKEN_CHARS:
        return (
            f"Refusing to serve on {config.host!r} with a token of {len(config.auth_token)} "
            f"characters: use at least {MIN_PUBLIC_TOKEN_CHARS}, random (for example "
            'python -c "import secrets; print(secrets.token_urlsafe(32))").'
        )
    return None


def hide_token(token: str) -> None:
    """Blank the token out of this process's /proc command line and environment (remove
    `TOKEN_ENV` from `os.environ` first); warn when it was on the command line."""
    if blank_startup_secret(token, "--auth-token", [TOKEN_ENV]).argv:
        logger.warning(
            "the token was given with --auth-token, so every local user could read it in this "
            "process's command line until now (and still can in a launcher's, such as uv run's, "
            "and in shell history); put it in a file only this user can read and pass "
            "--auth-token-file PATH instead"
        )


GATEWAY_TOKEN_ENV = "PYTHON_MCP_SERVER_KERNEL_GATEWAY_TOKEN"  # noqa: S105 (a name)


def resolve_gateway_token(value: str | None, file: Path | None, workspace_root: Path) -> str | None:
    """The kernel gateway's token, from `--kernel-gateway-token` or its file (or variables)."""
    if value is not None and file is not None:
        raise ConfigError(
            "give the gateway's token one way only: --kernel-gateway-token-file or "
            "--kernel-gateway-token (or their environment variables), not both"
        )
    token = (
        read_token_file(file, workspace_root, "--kernel-gateway-token-file")
        if file is not None
        else value
    )
    if token is not None and (not token or token != token.strip()):
        raise ConfigError(
            "the kernel gateway's token is empty or has leading or trailing spaces; give the "
            "token the gateway was started with (its KG_AUTH_TOKEN or EG_AUTH_TOKEN)"
        )
    return token


def hide_gateway_token(token: str) -> None:
    """Blank the gateway's token out of this process's /proc command line and environment."""
    if blank_startup_secret(token, "--kernel-gateway-token", [GATEWAY_TOKEN_ENV]).argv:
        logger.warning(
            "the gateway's token was given with --kernel-gateway-token, so every local user "
            "could read it in this process's command line; pass --kernel-gateway-token-file "
            f"PATH or set {GATEWAY_TOKEN_ENV} instead"
        )


def check_gateway_url(url: str | None) -> str | None:
    """`--kernel-gateway-url` without a trailing slash; refused unless it is an http(s) URL
    with a host and no credentials, query or fragment."""
    if url is None:
        return None
    parts = urlsplit(url.strip())
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it must start with http:// or https://"
    elif not parts.hostname:
        problem = "it names no host"
    elif parts.username or parts.password:
        problem = "it carries credentials: pass the token with --kernel-gateway-token-file"
    elif parts.query or parts.fragment:
        problem = "it has a query or fragment; give the gateway's base URL only"
    else:
        try:
            _ = parts.port
        except ValueError:
            problem = "its port is not a number from 0 to 65535"
    if problem is not None:
        named = "" if parts.password else f" {url!r}"  # never echo a password
        raise ConfigError(
            f"--kernel-gateway-url{named}: {problem} (for example http://127.0.0.1:8888)"
        )
    return url.strip().rstrip("/")
