"""Idle and slow HTTP clients cannot starve the server: a real server, raw sockets on loopback."""

from __future__ import annotations

import json
import resource
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Self

import httpx
import pytest

from python_mcp_server.config import ServerConfig
from tests.servers import http_server, threaded_http_server
from tests.test_http import modern_call, rpc_body

pytestmark = [pytest.mark.timeout(120)]

OPEN_FILES = 256  # the server's hard open-files limit in the flood test (it starts at half)
FLOOD = 400  # idle sockets held open at once: more than the server has descriptors
WAIT_S = 30.0  # bound on every wait below


def _with_open_files_limit(soft: int, hard: int) -> list[str]:
    """A command prefix that runs the server with these open-files limits."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("needs prlimit (util-linux) to start the server with few open files")
    return [prlimit, f"--nofile={soft}:{hard}", "--"]


def _open_files_limit(pid: int) -> int:
    """The soft open-files limit of process `pid`."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open-files limit in /proc/{pid}/limits")


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)


def _connect_many(port: int, count: int) -> list[socket.socket]:
    """`count` connections opened at once (a refused SYN is retried by the kernel, in parallel)."""
    socks = []
    with selectors.DefaultSelector() as selector:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            selector.register(sock, selectors.EVENT_WRITE)
            socks.append(sock)
        deadline = time.monotonic() + WAIT_S
        pending = count
        while pending:
            assert time.monotonic() < deadline, f"{pending} connections did not open"
            for key, _ in selector.select(timeout=1.0):
                selector.unregister(key.fileobj)
                pending -= 1
    for sock in socks:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return socks


def _held_by_server(port: int) -> int:
    """Connections to `port` still open on the server's side (established, accepted or waiting
    to be), from /proc/net/tcp."""
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] in ("01", "08"):  # ESTABLISHED, CLOSE_WAIT
            held += 1
    return held


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (read without blocking: end of stream or a reset)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


class Flood:
    """Keeps `size` idle connections open to `port` (those the server closes are replaced)
    until stopped; then holds the last ones so a test can see the server close them."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.socks = _connect_many(port, size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refill, daemon=True)

    def _refill(self) -> None:
        while not self._stop.wait(0.05):
            closed = [i for i, sock in enumerate(self.socks) if _closed_by_server(sock)]
            for i, sock in zip(closed, _connect_many(self.port, len(closed)), strict=True):
                self.socks[i].close()
                self.socks[i] = sock

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _room_for_sockets(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed and hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    elif soft < needed:
        pytest.skip(f"this test needs {needed} open files; the limit is {hard}")


@pytest.mark.kernel  # a cell runs during the flood
@pytest.mark.slow
def test_idle_sockets_beyond_the_descriptor_limit_do_not_starve_health_or_calls(
    workspace: Path,
) -> None:
    _room_for_sockets(4 * FLOOD)
    with http_server(
        workspace,
        "--max-sessions",
        "2",
        "--header-timeout",
        "2",
        prefix=_with_open_files_limit(OPEN_FILES // 2, OPEN_FILES),
    ) as server:
        raised = _open_files_limit(server.process.pid)
        port = _port(server.base)
        flood = Flood(port, FLOOD)
        try:
            with flood, httpx.Client(timeout=WAIT_S) as client:
                health = client.get(f"{server.base}/health")
                call = modern_call(client, server.url, 1, "run_python_code", {"code": "6 * 7"})
                ping = modern_call(client, server.url, 2, "ping", {})
            # once the flood stops refilling, the server closes every connection it still holds
            deadline = time.monotonic() + WAIT_S
            while held := _held_by_server(port):
                assert time.monotonic() < deadline, f"the server still holds {held} connections"
                time.sleep(0.1)
        finally:
            flood.close()
        log = server.log_text()
    assert raised == OPEN_FILES  # the soft limit was raised to the hard one at start
    assert health.status_code == 200
    assert rpc_body(call)["result"]["structuredContent"]["result"] == "42"
    assert rpc_body(ping)["result"]["isError"] is False
    assert "raise the limit (ulimit -n)" in log


def test_past_the_connection_cap_the_oldest_idle_connection_makes_room(
    config: ServerConfig,
) -> None:
    with threaded_http_server(replace(config, max_connections=3)) as base:
        idle = [_connect(_port(base)) for _ in range(3)]
        try:
            with httpx.Client(timeout=WAIT_S) as client:
                health = client.get(f"{base}/health")
            deadline = time.monotonic() + WAIT_S
            while not _closed_by_server(idle[0]):
                assert time.monotonic() < deadline, "the oldest idle connection was kept"
                time.sleep(0.02)
            still_open = [not _closed_by_server(sock) for sock in idle[1:]]
        finally:
            for sock in idle:
                sock.close()
    assert health.status_code == 200
    assert all(still_open)  # the header timeout (10 s) has not closed the others


@contextmanager
def _partial_posts(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections each in the middle of a request: headers sent, body not."""
    socks = []
    try:
        for _ in range(count):
            sock = _connect(port)
            sock.sendall(
                b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_past_the_connection_cap_with_every_connection_busy_requests_get_a_clear_503(
    config: ServerConfig,
) -> None:
    with (
        threaded_http_server(replace(config, max_connections=3)) as base,
        _partial_posts(_port(base), 3) as busy,
    ):
        with httpx.Client(timeout=WAIT_S) as client:
            refused = client.get(f"{base}/health")
        busy[0].close()
        deadline = time.monotonic() + WAIT_S
        while True:
            with httpx.Client(timeout=WAIT_S) as client:
                again = client.get(f"{base}/health")
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert refused.status_code == 503
    assert refused.headers["connection"] == "close"
    message = refused.json()["error"]["message"]
    assert "limit of 3 open connections" in message
    assert "--max-connections" in message
    assert again.status_code == 200


def _drip(sock: socket.socket, data: bytes, stop: threading.Event) -> threading.Thread:
    """Send `data` a byte every 0.1 s until stopped or the server closes the connection."""

    def run() -> None:
        for i in range(len(data)):
            if stop.wait(0.1):
                return
            try:
                sock.sendall(data[i : i + 1])
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's
    timeout)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_headers_or_a_body_sent_a_byte_at_a_time_are_cut_off(config: ServerConfig) -> None:
    request = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with threaded_http_server(replace(config, header_timeout_s=1, body_timeout_s=1)) as base:
        port = _port(base)
        silent = _connect(port)
        slow_headers = _connect(port)
        slow_body = _connect(port)
        slow_body.sendall(request + b"Content-Length: 10000\r\n\r\n{")
        stop = threading.Event()
        drips = [
            _drip(slow_headers, request + b"X-Slow: " + b"a" * 1000, stop),
            _drip(slow_body, b" " * 10000, stop),
        ]
        try:
            after_silence = _read_until_closed(silent)
            after_headers = _read_until_closed(slow_headers)
            after_body = _read_until_closed(slow_body)
        finally:
            stop.set()
            for thread in drips:
                thread.join(WAIT_S)
            for sock in (silent, slow_headers, slow_body):
                sock.close()
        with httpx.Client(timeout=WAIT_S) as client:
            health = client.get(f"{base}/health")
    assert after_silence == b""
    head, _, text = after_headers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"headers did not arrive within 1 s" in text
    head, _, body = after_body.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in head.lower()
    message = json.loads(body)["error"]["message"]
    assert message.startswith("The request body did not arrive within 1 s")
    assert "of 10000 bytes came" in message
    assert health.status_code == 200
