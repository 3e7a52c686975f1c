"""The Jupyter gateway protocol: REST on `/api/kernels` and `/api/sessions`, and the kernel's
websocket on `/api/kernels/{id}/channels`, as Jupyter Kernel Gateway, Enterprise Gateway and
jupyter_server serve them.

REST goes through httpx with a retry policy: a request that never reached the gateway (refused,
timed out connecting) is retried `retries` times with a growing pause; a request that did reach
it is retried only when repeating it is harmless. Every failure is a `GatewayError` that names
the gateway and what to check. Messages on the websocket are the legacy JSON form (text frames;
binary frames when a message carries buffers), which every gateway speaks without negotiating
a subprotocol. The token goes in `Authorization: token ...`: gateways refuse `Bearer`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from python_mcp_server.errors import GatewayError, ListingRefusedError

PROTOCOL_VERSION = "5.3"
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_RETRY_STATUS = frozenset({502, 503, 504})
_FIRST_PAUSE_S = 0.2


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway is and how to talk to it."""

    url: str
    token: str | None = None
    kernel_name: str = "python3"
    username: str = "python-mcp-server"  # KERNEL_USERNAME (Enterprise Gateway refuses root)
    workdir: str | None = None  # kernels' working folder there (`path`, KERNEL_WORKING_DIR)
    connect_timeout_s: float = 10.0

    @property
    def request_timeout_s(self) -> float:
        """How long a REST answer (or the websocket's upgrade) may take once connected."""
        return 3 * self.connect_timeout_s

    retries: int = 3
    env: dict[str, str] = field(default_factory=dict)  # KERNEL_* variables for every kernel

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    @property
    def shown(self) -> str:
        """The gateway's address as messages name it (no credentials, no query)."""
        parts = urlsplit(self.base)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}


class GatewayClient:
    """REST calls to one gateway, and its kernels' websockets."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
        self._http = httpx.AsyncClient(
            base_url=settings.base, headers=settings.headers(), timeout=timeout, trust_env=False
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ REST

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool = True,
        timeout_s: float | None = None,
        refusals: tuple[int, ...] = (401, 403),
    ) -> httpx.Response:
        """One request, retried as the module says; raises `GatewayError` when it cannot be
        made or the gateway refuses the token."""
        settings = self.settings
        pause = _FIRST_PAUSE_S
        failure = ""
        for attempt in range(settings.retries + 1):
            if attempt:
                await asyncio.sleep(pause)  # back off before trying again
                pause *= 2
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=body,
                    timeout=httpx.Timeout(
                        timeout_s or settings.request_timeout_s,
                        connect=settings.connect_timeout_s,
                    ),
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = _describe(exc)
                continue
            except httpx.TransportError as exc:
                failure = _describe(exc)
                if idempotent:
                    continue
                break
            if response.status_code in _RETRY_STATUS and idempotent:
                failure = f"it answered {response.status_code} {response.reason_phrase}"
                continue
            if response.status_code in refusals:
                raise GatewayError(self.refused(response.status_code, _detail(response)))
            return response
        raise GatewayError(
            f"The kernel gateway at {settings.shown} cannot be reached ({failure}; "
            f"tried {settings.retries + 1} times). Check that it runs and that "
            "--kernel-gateway-url points at it; the server keeps serving and tries again on "
            "the next call."
        )

    def refused(self, status: int, detail: str = "") -> str:
        why = f": {detail}" if detail else ""
        return (
            f"The kernel gateway at {self.settings.shown} refused this server ({status}{why}). "
            "Check --kernel-gateway-token (the gateway's KG_AUTH_TOKEN or EG_AUTH_TOKEN) and, "
            "for Enterprise Gateway, that --kernel-gateway-user is an authorized user."
        )

    async def start_kernel(self, env: dict[str, str], timeout_s: float) -> str:
        """Ask for a new kernel; its id. Kernel Gateway answers before the kernel is up,
        Enterprise Gateway once its pod runs: `timeout_s` bounds that wait."""
        env = {**self.settings.env, **env}
        body: dict[str, Any] = {"name": self.settings.kernel_name, "env": env}
        if self.settings.workdir:
            body["path"] = self.settings.workdir  # Kernel Gateway: under its root_dir
            env["KERNEL_WORKING_DIR"] = self.settings.workdir  # Enterprise Gateway
        # a start that reached the gateway is not repeated: it could make a second kernel
        response = await self.call(
            "POST", "/api/kernels", body, idempotent=False, timeout_s=timeout_s
        )
        if response.status_code not in (200, 201):
            raise GatewayError(
                f"The kernel gateway at {self.settings.shown} did not start a kernel "
                f"({response.status_code}: {_detail(response)}). Check "
                f"--kernel-gateway-kernel ({self.settings.kernel_name!r}) against the "
                "gateway's /api/kernelspecs."
            )
        kernel_id = response.json().get("id")
        if not isinstance(kernel_id, str) or not kernel_id:
            raise GatewayError(
                f"The kernel gateway at {self.settings.shown} answered a kernel start without "
                "a kernel id; is --kernel-gateway-url a Jupyter gateway?"
            )
        return kernel_id

    async def kernel_state(self, kernel_id: str) -> str | None:
        """The kernel's execution state, or None when the gateway no longer has it."""
        response = await self.call("GET", f"/api/kernels/{quote(kernel_id)}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GatewayError(
                f"The kernel gateway at {self.settings.shown} did not describe kernel "
                f"{kernel_id} ({response.status_code}: {_detail(response)})."
            )
        return str(response.json().get("execution_state") or "unknown")

    async def interrupt(self, kernel_id: str) -> bool:
        """Interrupt the kernel; False when the gateway no longer has it."""
        response = await self.call("POST", f"/api/kernels/{quote(kernel_id)}/interrupt")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise GatewayError(
                f"The kernel gateway at {self.settings.shown} did not interrupt kernel "
                f"{kernel_id} ({response.status_code}: {_detail(response)})."
            )
        return True

    async def delete_kernel(self, kernel_id: str) -> None:
        """Shut a kernel down; one the gateway no longer has is fine."""
        await self.call("DELETE", f"/api/kernels/{quote(kernel_id)}")

    async def list_kernels(self) -> list[dict[str, Any]]:
        # 403 here is Kernel Gateway's "listing is off", not a refused token
        response = await self.call("GET", "/api/kernels", refusals=(401,))
        if response.status_code != 200:
            raise ListingRefusedError(
                f"The kernel gateway at {self.settings.shown} does not list its kernels "
                f"({response.status_code}), so servers sharing it cannot find each other's "
                "sessions: start Kernel Gateway with --JupyterWebsocketPersonality.list_kernels="
                "True (KG_LIST_KERNELS=True), Enterprise Gateway with EG_LIST_KERNELS=True."
            )
        found = response.json()
        return [k for k in found if isinstance(k, dict)] if isinstance(found, list) else []

    # ------------------------------------------------------------- websocket

    async def open_channels(self, kernel_id: str, session: str) -> WebSocketClientConnection:
        """The kernel's websocket (all channels on one connection). Raises `GatewayError`."""
        parts = urlsplit(self.settings.base)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}/api/kernels/{quote(kernel_id)}/channels"
        url = urlunsplit((scheme, parts.netloc, path, f"session_id={quote(session)}", ""))
        request = HTTPRequest(
            url,
            headers=self.settings.headers(),
            connect_timeout=self.settings.connect_timeout_s,
            request_timeout=self.settings.request_timeout_s,
        )
        try:
            ws = await websocket_connect(request, max_message_size=_MAX_MESSAGE_BYTES)
        except HTTPClientError as exc:
            if exc.code in (401, 403):
                raise GatewayError(self.refused(exc.code)) from exc
            if exc.code == 404:
                raise GatewayError(
                    f"Kernel {kernel_id} is gone from the kernel gateway at {self.settings.shown}."
                ) from exc
            raise GatewayError(
                f"The kernel gateway at {self.settings.shown} refused kernel {kernel_id}'s "
                f"channels ({exc.code}: {exc.message})."
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise GatewayError(
                f"The kernel gateway at {self.settings.shown} cannot be reached for kernel "
                f"{kernel_id}'s channels ({_describe(exc)})."
            ) from exc
        stream = getattr(ws.protocol, "stream", None)
        if stream is not None:  # requests are small and latency-bound
            stream.set_nodelay(True)
        return ws


class Messages:
    """Builds requests for one websocket session and reads what arrives on it."""

    def __init__(self, session: str, username: str) -> None:
        self.session = session
        self._username = username
        self._prefix = f"{session[:8]}-{os.getpid()}-"
        self._count = 0

    def request(self, channel: str, msg_type: str, content: dict[str, Any]) -> tuple[str, str]:
        """A new request's id, and its text frame."""
        self._count += 1
        msg_id = f"{self._prefix}{self._count}"
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": self._username,
            "session": self.session,
            "date": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "version": PROTOCOL_VERSION,
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        return msg_id, json.dumps(message, separators=(",", ":"), allow_nan=False)


def new_session() -> str:
    return secrets.token_hex(16)


def decode(frame: str | bytes) -> dict[str, Any]:
    """A message from a text frame, or from a binary one (the message then its buffers, after a
    table of offsets). Raises ValueError when it is neither."""
    if isinstance(frame, str):
        message = json.loads(frame)
    else:
        if len(frame) < 8:
            raise ValueError("binary frame too short")
        (count,) = struct.unpack("!I", frame[:4])
        if count < 1 or len(frame) < 4 * (count + 1):
            raise ValueError("binary frame with a bad offset table")
        offsets = [*struct.unpack(f"!{count}I", frame[4 : 4 * (count + 1)]), len(frame)]
        parts = [frame[offsets[i] : offsets[i + 1]] for i in range(count)]
        message = json.loads(parts[0].decode("utf-8", "replace"))
        if isinstance(message, dict):
            message["buffers"] = parts[1:]
    if not isinstance(message, dict):
        raise ValueError("a websocket message that is not a JSON object")  # noqa: TRY004
    header = message.get("header") or {}
    message.setdefault("msg_type", header.get("msg_type"))
    message.setdefault("msg_id", header.get("msg_id"))
    return message


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or "")[:200]
    return ""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
