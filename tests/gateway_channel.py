"""A minimal client of a gateway kernel's websocket (`/api/kernels/{id}/channels`), for tests of
the harness: Jupyter messages as JSON text frames (the protocol without a subprotocol), over
tornado's websocket client (tornado comes with jupyter_client; httpx has no websocket).

Also `gateway_socket_nodelay`, which reads `TCP_NODELAY` on the gateway's own end of a connection.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.gateway import KernelGateway

_SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


@dataclass
class Execution:
    """What a cell did: the reply's status, its stdout, the error's name, the count."""

    status: str
    stdout: str = ""
    error_name: str | None = None
    execution_count: int | None = None
    results: list[str] = field(default_factory=list)  # execute_result text/plain


class KernelChannel:
    """One websocket to a kernel on the gateway. `open` returns once the kernel answered a
    `kernel_info_request`; use as an async context manager, or `close()` it."""

    def __init__(self, connection: WebSocketClientConnection) -> None:
        self.connection = connection
        self.session = uuid.uuid4().hex

    @classmethod
    async def open(
        cls, gateway: KernelGateway, kernel_id: str, deadline_s: float = 30.0
    ) -> KernelChannel:
        request = HTTPRequest(
            f"{gateway.ws_url}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}",
            headers=gateway.headers,
            connect_timeout=deadline_s,
            request_timeout=deadline_s,
        )
        with anyio.fail_after(deadline_s):
            channel = cls(await websocket_connect(request))
        try:
            await channel.wait_until_ready(deadline_s)
        except BaseException:
            channel.close()
            raise
        return channel

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    @property
    def local_port(self) -> int:
        """This end's port: the gateway's socket for this websocket has it as its peer."""
        stream = self.connection.stream
        assert stream is not None
        return int(stream.socket.getsockname()[1])

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        """Send one message; its msg_id."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "tests",
            "session": self.session,
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        await self.connection.write_message(json.dumps(message))
        return msg_id

    async def receive(self) -> dict[str, Any]:
        """The next message from the kernel (any channel)."""
        raw = await self.connection.read_message()
        if raw is None:
            raise ConnectionError(
                f"the gateway closed the websocket ({self.connection.close_reason})"
            )
        message: dict[str, Any] = json.loads(raw)
        return message

    async def wait_until_ready(self, deadline_s: float = 30.0) -> dict[str, Any]:
        """Send `kernel_info_request` until one is answered (a kernel just started may miss the
        first); the reply's content."""
        with anyio.fail_after(deadline_s):
            while True:
                msg_id = await self.send("kernel_info_request", {})
                with anyio.move_on_after(2.0):
                    while True:
                        message = await self.receive()
                        if (
                            message["parent_header"].get("msg_id") == msg_id
                            and message["header"]["msg_type"] == "kernel_info_reply"
                        ):
                            content: dict[str, Any] = message["content"]
                            return content

    async def execute(
        self,
        code: str,
        *,
        deadline_s: float = 30.0,
        on_stdout: Callable[[str], Any] | None = None,
    ) -> Execution:
        """Run `code`; returns once both the reply and the idle status have come. `on_stdout` is
        called with each stdout chunk as it arrives (and awaited if it returns an awaitable)."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        with anyio.fail_after(deadline_s):
            msg_id = await self.send("execute_request", content)
            result = Execution(status="")
            idle = False
            while not (result.status and idle):
                message = await self.receive()
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, body = message["header"]["msg_type"], message["content"]
                if kind == "stream" and body["name"] == "stdout":
                    result.stdout += body["text"]
                    if on_stdout is not None:
                        awaitable = on_stdout(body["text"])
                        if awaitable is not None:
                            await awaitable
                elif kind == "execute_result":
                    result.results.append(body["data"].get("text/plain", ""))
                elif kind == "error":
                    result.error_name = body["ename"]
                elif kind == "status":
                    idle = body["execution_state"] == "idle"
                elif kind == "execute_reply":
                    result.status = body["status"]
                    result.execution_count = body.get("execution_count")
            return result


def gateway_socket_nodelay(gateway_pid: int, gateway_port: int, peer_port: int) -> bool:
    """Whether `TCP_NODELAY` is on for the gateway's end of the loopback connection whose other
    end is `peer_port`: the socket is copied out of the gateway process with pidfd_getfd(2)
    (Linux 5.6+, needs ptrace rights over it: our child qualifies) and asked with getsockopt.

    Raises:
        OSError: the kernel or its policy refuses pidfd_getfd (ENOSYS, EPERM).
        LookupError: the gateway has no such connection.
    """
    fd = _socket_fd(gateway_pid, _connection_inode(gateway_pid, gateway_port, peer_port))
    pidfd = os.pidfd_open(gateway_pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        copy = int(libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0))
        if copy < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"pidfd_getfd: {os.strerror(errno)}")
    finally:
        os.close(pidfd)
    with socket.socket(fileno=copy) as sock:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def _connection_inode(pid: int, local_port: int, peer_port: int, deadline_s: float = 5.0) -> int:
    deadline = time.monotonic() + deadline_s
    while True:
        for table in ("tcp", "tcp6"):
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            for line in lines:
                fields = line.split()
                local, peer = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                if (local, peer) == (local_port, peer_port):
                    return int(fields[9])
        if time.monotonic() > deadline:
            raise LookupError(f"no connection {local_port} <- {peer_port} in process {pid}")
        time.sleep(0.05)


def _socket_fd(pid: int, inode: int) -> int:
    target = f"socket:[{inode}]"
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(entry) == target:
                return int(entry.name)
        except OSError:
            continue
    raise LookupError(f"process {pid} holds no descriptor for {target}")
