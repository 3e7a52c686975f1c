"""Launch the real server as a subprocess on a free loopback port, for HTTP and stdio tests."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server, http_app, uvicorn_config
from python_mcp_server.transports import ConnectionGuard
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
    """The variables that give a server subprocess the suite's sandbox mode, and no background
    build of the environments' runtime layer (which no such test uses)."""
    return {"PYTHON_MCP_SERVER_SANDBOX": sandbox_mode(), "PYTHON_MCP_SERVER_ENV_PREBUILD": "0"}


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server subprocess: ours, with the suite's sandbox mode."""
    return {**os.environ, **sandbox_env(), **(extra or {})}


@contextmanager
def http_server(
    workspace: Path,
    *args: str,
    startup_timeout_s: float = 60.0,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """`python -m python_mcp_server --port <free>` until it answers /health; SIGTERM at exit.
    `prefix` goes before the command (a program that execs it, such as `prlimit ... --`)."""
    port = free_port()
    log = workspace.parent / f"server-{port}.log"
    cmd = [
        *prefix,
        *server_command(
            "--port", str(port), "--workspace-dir", str(workspace), "--kernel-pool-size", "0", *args
        ),
    ]
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


@contextmanager
def threaded_http_server(
    config: ServerConfig, startup_timeout_s: float = 60.0, keepalive_s: float = 15.0
) -> Iterator[str]:
    """The server's HTTP app under uvicorn, as `serve` runs it (its connections watched by a
    `ConnectionGuard` with `config`'s cap and header timeout), in a thread of this process, on a
    free loopback port; yields the base URL. Quicker to start than a subprocess. `keepalive_s`:
    how long a silent stream waits before a keepalive."""
    config = dataclasses.replace(config, port=free_port())
    guard = ConnectionGuard(cap=config.max_connections, header_timeout_s=config.header_timeout_s)
    app = http_app(create_server(config), config, keepalive_s=keepalive_s)
    server = uvicorn.Server(uvicorn_config(app, config, guard))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread ended before it started serving")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout_s)
