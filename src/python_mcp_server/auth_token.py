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


def read_token_file(path: Path, workspace_root: Path) -> str:
    """The first line of `path`, refused unless only this user can read the file, and it is
    outside the workspace (which every session's code and the file tools read)."""
    if path.expanduser().resolve().is_relative_to(workspace_root):
        raise ConfigError(
            f"--auth-token-file: {path} is inside the workspace ({workspace_root}), where code "
            "run in the kernels and read_file can read it; keep the token file outside it"
        )
    try:
        with path.expanduser().open("rb") as f:
            info = os.fstat(f.fileno())
            data = f.read(_FILE_MAX_BYTES)
    except OSError as exc:
        raise ConfigError(f"--auth-token-file: cannot read {path}: {exc.strerror or exc}") from None
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"--auth-token-file: {path} belongs to another user (uid {info.st_uid}), who can read "
            f"the token; give it to this user (chown {os.geteuid()} {path}) and run "
            f"chmod 600 {path}"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"--auth-token-file: other users can read or change {path} (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path} so that only this user can"
        )
    try:
        return data.split(b"\n", 1)[0].removesuffix(b"\r").decode()
    except UnicodeDecodeError:
        raise ConfigError(f"--auth-token-file: the first line of {path} is not UTF-8") from None


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
