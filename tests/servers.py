"""Launch the real server as a subprocess on a free loopback port, for HTTP and stdio tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import sandbox_mode


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "python_mcp_server", *args]


def sandbox_env() -> dict[str, str]:
    """The variable that gives a server subprocess the suite's sandbox mode."""
    return {"PYTHON_MCP_SERVER_SANDBOX": sandbox_mode()}


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server subprocess: ours, with the suite's sandbox mode."""
    return {**os.environ, **sandbox_env(), **(extra or {})}


@contextmanager
def http_server(
    workspace: Path, *args: str, startup_timeout_s: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """`python -m python_mcp_server --port <free>` until it answers /health; SIGTERM at exit."""
    port = free_port()
    log = workspace.parent / f"server-{port}.log"
    cmd = server_command(
        "--port", str(port), "--workspace-dir", str(workspace), "--kernel-pool-size", "0", *args
    )
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=server_env(env))
    base = f"http://127.0.0.1:{port}"
    server = RunningServer(url=f"{base}/mcp", base=base, process=proc, log=log)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not start:\n{server.log_text()}")
            time.sleep(0.05)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    """SIGTERM, then wait (bounded); SIGKILL as a last resort so a failing test cannot leak it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)
