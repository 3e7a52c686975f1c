"""The egress proxy: the only way out of a sandboxed kernel's network namespace, to allowed hosts.

With `--kernel-network allowlist` the kernel's namespace has only `lo`. The server runs this
proxy on the host side, listening on a unix socket bound into the sandbox; inside, the kernel-side
relay (`kernel_ext/relay.py`) turns `HTTP(S)_PROXY=http://127.0.0.1:PORT` into that socket. Code
that ignores the proxy variables has no route at all, so the allow-list is enforced here and
nowhere else has to be trusted.

It speaks the two requests clients send a proxy: `CONNECT host:port` (HTTPS, and anything else
tunnelled: the bytes are copied both ways after `200 Connection established`) and absolute-form
plain HTTP (`GET http://host/path`: forwarded with an origin-form path and `Connection: close`).
It never interprets responses beyond their head, so it follows no redirect: the client sees the
3xx and asks again, through the allow-list.

Policy, and why:

- The host a request *names* must match the allow-list (`allowlist.py`). For plain HTTP a Host
  header that names another host is refused too: a shared front end would route on it.
- Names are resolved here, on the host side, once; the proxy connects to the address it checked,
  so a second lookup cannot point somewhere else (DNS rebinding).
- A name must not lead to this machine: an address that is loopback or unspecified (127.0.0.0/8,
  ::1, 0.0.0.0, and their IPv4-mapped forms) is reached only through an entry that names a
  loopback host itself (`localhost:8123`, `127.0.0.1:8123`), so an allowed public name whose DNS
  says 127.0.0.1 cannot reach the server's own port or anything else listening on the host's
  loopback. Other non-public addresses (private, link-local such as cloud metadata at
  169.254.169.254, CGNAT, multicast, reserved) are reached only through an exact entry, never
  through a `*.` wildcard, whose subdomains someone else may control.
- Every refusal is logged (one INFO line) and kept: `refused` holds the last 100 as `Refusal`s,
  `refused_total` and `allowed_total` count all of them, for `get_kernel_health`.
- Bounded: the head is at most 16 KiB and must arrive within `header_timeout_s`; a connection
  idle both ways for `idle_timeout_s` is closed; past `max_connections` new ones get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import stat
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from python_mcp_server.errors import ConfigError
from python_mcp_server.procs.leftovers import claim
from python_mcp_server.sandbox import _http
from python_mcp_server.sandbox._http import BadRequestError, Request, Target
from python_mcp_server.sandbox._streams import Activity, close, copy, pipe
from python_mcp_server.sandbox.allowlist import AllowList, IPAddress, Rule, address_refusal

__all__ = ["AllowList", "EgressProxy", "Refusal", "proxy_folder"]

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024


def proxy_folder() -> Path:
    """A fresh folder for the proxy's socket, that the kernels' uid can reach. It names this
    server as its owner, so the next server removes it should this one be killed."""
    folder = Path(tempfile.mkdtemp(prefix="python-mcp-server-egress-"))
    claim(folder)
    folder.chmod(0o755)
    return folder


RECENT_REFUSALS = 100


@dataclass(frozen=True)
class Refusal:
    """One refused request: when (`time.time()`), the host and port it named (port 0 when the
    request was too malformed to name one), the status sent and why."""

    time: float
    host: str
    port: int
    status: int
    reason: str


class _Refused(Exception):
    """A request the proxy answers with an error status instead of serving it."""

    def __init__(self, status: int, host: str, port: int, reason: str, body: str) -> None:
        super().__init__(reason)
        self.status, self.host, self.port, self.reason, self.body = status, host, port, reason, body


def _not_allowed(target: Target) -> _Refused:
    host, port = target.host_text, target.port
    shown = f"[{host}]" if ":" in host else host
    return _Refused(
        403,
        host,
        port,
        "not on the allow-list",
        f"python-mcp-server egress proxy: {shown}:{port} is not on the allow-list. To allow it, "
        f"start the server with --kernel-allow-host {shown}:{port} (or --kernel-allow-host "
        f"{shown} for ports 80 and 443).",
    )


class EgressProxy:
    """An HTTP proxy on a unix socket that lets sandboxed kernels reach the allowed hosts only.

    ```python
    async with EgressProxy(AllowList.parse(["pypi.org"]), run_dir / "egress.sock") as proxy:
        ...  # bind proxy.socket_path into the sandbox; read proxy.refused for health
    ```
    """

    def __init__(
        self,
        allow: AllowList,
        socket_path: Path,
        *,
        connect_timeout_s: float = 10,
        idle_timeout_s: float = 300,
        header_timeout_s: float = 10,
        max_connections: int = 64,
    ) -> None:
        self.allow = allow
        self.socket_path = Path(socket_path)
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.allowed_total = 0
        self.refused_total = 0
        self._refused: deque[Refusal] = deque(maxlen=RECENT_REFUSALS)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = 0  # connections past their head: tunnels and forwarded requests

    @property
    def refused(self) -> list[Refusal]:
        """The most recent refusals (at most 100), oldest first."""
        return list(self._refused)

    @property
    def active_connections(self) -> int:
        """Client connections being served right now."""
        return len(self._tasks)

    async def start(self) -> None:
        """Listen on `socket_path` (mode 0666: the sandbox's own uid must connect).

        Raises:
            ConfigError: the path is taken by something that is not a socket, or cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("EgressProxy already started")
        path = self.socket_path
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ConfigError(f"Egress proxy socket {path} exists and is not a socket.")
            path.unlink()  # a stale socket from an earlier run
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(path), limit=MAX_HEAD_BYTES
            )
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on the egress proxy socket {path}: {exc.strerror}. Use a shorter "
                "path (at most 107 bytes) in a writable directory."
            ) from exc
        os.chmod(path, 0o666)  # noqa: S103 - the sandbox runs as another uid; the dir guards it
        logger.info("egress proxy listening on %s (%d rules)", path, len(self.allow.rules))

    async def aclose(self) -> None:
        """Stop listening, end every connection and remove the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _refuse(self, refused: _Refused) -> None:
        self.refused_total += 1
        self._refused.append(
            Refusal(time.time(), refused.host, refused.port, refused.status, refused.reason)
        )
        logger.info(
            "egress refused %r port %d (%d): %s",
            refused.host[:200],
            refused.port,
            refused.status,
            refused.reason,
        )

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's callback: one task per connection, ours to cancel in `aclose` (asyncio
        reports a cancelled task it made for a coroutine callback as an error)."""
        if self._server is None or len(self._tasks) >= 2 * self.max_connections:
            self._refuse(_Refused(503, "", 0, "too many connections", ""))
            writer.transport.abort()
            return
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except _Refused as refused:
            self._refuse(refused)
            with contextlib.suppress(OSError):
                writer.write(_http.reply(refused.status, refused.body))
                await writer.drain()
        except OSError as exc:
            logger.debug("egress connection ended: %s", exc)
        finally:
            await close(writer)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            async with asyncio.timeout(self.header_timeout_s):
                return await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise _Refused(
                408, "", 0, "request head timed out", "The request head did not arrive in time."
            ) from None
        except asyncio.LimitOverrunError:
            raise _Refused(
                431,
                "",
                0,
                "request head too large",
                f"Heads are limited to {MAX_HEAD_BYTES} bytes.",
            ) from None

    def _check(self, request: Request) -> Rule:
        rule = self.allow.match(request.target.host, request.target.port)
        if rule is None:
            raise _not_allowed(request.target)
        header = request.host_header
        if header is not None and (header.host, header.port) != (
            request.target.host,
            request.target.port,
        ):
            target = request.target
            raise _Refused(
                403,
                header.host_text,
                header.port,
                f"Host header does not match the URL host {target.host_text}:{target.port}",
                "python-mcp-server egress proxy: the Host header names another host than the URL "
                f"({header.host_text}:{header.port} vs {target.host_text}:{target.port}).",
            )
        return rule

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await self._read_head(reader)
        except asyncio.IncompleteReadError:
            return  # the client left before sending a request
        try:
            request = _http.parse_request(head)
        except BadRequestError as exc:
            # what the request named, for the log and health: the target of its first line
            first = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            named = first[1] if len(first) > 1 else first[0]
            raise _Refused(400, named[:200], 0, str(exc), f"Bad request: {exc}.") from None
        rule = self._check(request)
        if self._open >= self.max_connections:
            raise _Refused(
                503,
                request.target.host_text,
                request.target.port,
                "too many connections",
                f"python-mcp-server egress proxy: {self.max_connections} connections are open "
                "already; close some and try again.",
            )
        self._open += 1
        try:
            await self._serve_allowed(rule, request, (reader, writer))
        finally:
            self._open -= 1

    async def _serve_allowed(
        self,
        rule: Rule,
        request: Request,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        reader, writer = client
        upstream = await self._connect(rule, request.target)
        self.allowed_total += 1
        try:
            if request.path is None:
                writer.write(_http.reply(200))
                await writer.drain()
                await pipe((reader, writer), upstream, self.idle_timeout_s)
            else:
                await self._forward(request, (reader, writer), upstream)
        finally:
            await close(upstream[1])

    async def _resolve(self, rule: Rule, target: Target) -> list[IPAddress]:
        if not isinstance(target.host, str):
            addresses: list[IPAddress] = [target.host]
        else:
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    infos = await loop.getaddrinfo(
                        target.host, target.port, type=socket.SOCK_STREAM
                    )
            except (OSError, TimeoutError) as exc:
                raise _Refused(
                    502,
                    target.host_text,
                    target.port,
                    f"cannot resolve: {exc}",
                    f"python-mcp-server egress proxy: cannot resolve {target.host_text}.",
                ) from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        why = [r for r in (address_refusal(rule, a) for a in addresses) if r is not None]
        if why:
            raise _Refused(
                403,
                target.host_text,
                target.port,
                why[0],
                f"python-mcp-server egress proxy: {target.host_text} {why[0]}; the allow-list "
                "entry cannot reach it. Name a loopback or private host explicitly "
                "(--kernel-allow-host localhost:PORT) if it is meant.",
            )
        return addresses

    async def _connect(
        self, rule: Rule, target: Target
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addresses = await self._resolve(rule, target)
        error: str = "no address"
        for address in addresses:
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    return await asyncio.open_connection(
                        str(address), target.port, limit=4 * MAX_HEAD_BYTES
                    )
            except TimeoutError:
                error = "timed out"
            except OSError as exc:
                error = exc.strerror or str(exc)
        raise _Refused(
            502,
            target.host_text,
            target.port,
            f"cannot connect: {error}",
            f"python-mcp-server egress proxy: cannot connect to {target.host_text}:{target.port} "
            f"({error}).",
        )

    async def _forward(
        self,
        request: Request,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        """Send the request upstream, pass the response head back rewritten, then copy the rest
        (the request body one way, the response body the other) until both ends are done."""
        upstream[1].write(_http.forward_head(request))
        await upstream[1].drain()
        activity = Activity()
        upload = asyncio.create_task(copy(client[0], upstream[1], activity, self.idle_timeout_s))
        try:
            if await self._response_head(upstream[0], client[1]):
                await copy(upstream[0], client[1], activity, self.idle_timeout_s)
        finally:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)

    async def _response_head(
        self, upstream: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> bool:
        """Pass the response head on; False (after a 502) if upstream sent none that is valid."""
        while True:  # 1xx interim responses pass unchanged; the final one gets Connection: close
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    head = await upstream.readuntil(b"\r\n\r\n")
                status = _http.response_status(head)
                if 100 <= status < 200 and status != 101:
                    client.write(head)
                    continue
                client.write(_http.rewrite_response_head(head))
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                BadRequestError,
                TimeoutError,
            ) as exc:
                logger.info("egress upstream sent no valid response head: %s", exc)
                client.write(_http.reply(502, "The upstream server sent no valid response."))
                return False
            await client.drain()
            return True
