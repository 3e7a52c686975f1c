"""Finding and running the package installer: argv only, its own process group, a hard timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Literal

import anyio

from python_mcp_server.config import SECRET_ENV_VARS
from python_mcp_server.errors import PackageError
from python_mcp_server.kernels.messages import strip_ansi

_KEEP_BYTES = 256_000


def find_installer(python: str) -> tuple[Literal["uv", "pip"], list[str]]:
    """The installer's argv prefix: uv on PATH or beside this interpreter, else pip."""
    uv = shutil.which("uv")
    if uv is None:
        beside = Path(sys.executable).with_name("uv")
        uv = str(beside) if beside.is_file() else None
    if uv is not None:
        return "uv", [uv, "pip", "install", "--python", python]
    return "pip", [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]


async def run_installer(argv: list[str], limit_s: float, cwd: Path) -> tuple[int | None, str]:
    """Run the installer; returns (exit code or None on timeout, output). Never a shell."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in SECRET_ENV_VARS},
        "NO_COLOR": "1",
        "UV_NO_PROGRESS": "1",
        "PIP_NO_INPUT": "1",
    }
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise PackageError(f"The installer {argv[0]} could not be started: {exc}.") from exc
    buffer = bytearray()

    async def pump() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            buffer.extend(chunk)
            del buffer[:-_KEEP_BYTES]

    try:
        with anyio.move_on_after(limit_s) as scope:
            await pump()
            await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with anyio.CancelScope(shield=True):
                await proc.wait()
    output = strip_ansi(buffer.decode("utf-8", "replace"))
    return (None if scope.cancelled_caught else proc.returncode), output
