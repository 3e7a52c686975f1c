"""The network policy of sandboxed kernels, against a real HTTP server on loopback: with
`--kernel-network allowlist` an allowed name is reached through the egress proxy, any other is
refused, counted and reported, and code that ignores the proxy has no route at all."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from tests.helpers import call

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not plan_sandbox(ServerConfig(sandbox="auto")).enabled,
        reason="kernels cannot be sandboxed on this host (bubblewrap missing or not permitted)",
    ),
]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def web_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _fetch(url: str) -> str:
    return (
        "import urllib.request, urllib.error\n"
        "try:\n"
        f"    print(urllib.request.urlopen({url!r}, timeout=10).read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print('refused', e.code, e.read().decode())\n"
    )


async def test_an_allowed_name_is_reached_and_others_are_refused_and_reported(
    config: ServerConfig, web_port: int
) -> None:
    allowed = dataclasses.replace(
        config,
        sandbox="on",
        kernel_network="allowlist",
        kernel_allow_hosts=(f"localhost:{web_port}",),
    )
    async with Client(create_server(allowed)) as client:
        ok = await call(client, "run_python_code", code=_fetch(f"http://localhost:{web_port}/"))
        other = await call(client, "run_python_code", code=_fetch(f"http://127.0.0.1:{web_port}/"))
        health = await call(client, "get_kernel_health")
    assert ok["stdout"] == "hello from the host\n"
    assert str(other["stdout"]).startswith("refused 403")
    assert "--kernel-allow-host" in str(other["stdout"])
    sandbox = health["sandbox"]
    assert sandbox["network"] == "allowlist"
    assert sandbox["refused_connections"] == 1
    assert [(r["host"], r["port"], r["status"]) for r in sandbox["recent_refusals"]] == [
        ("127.0.0.1", web_port, 403)
    ]


async def test_code_that_ignores_the_proxy_has_no_route(
    config: ServerConfig, web_port: int
) -> None:
    allowed = dataclasses.replace(
        config,
        sandbox="on",
        kernel_network="allowlist",
        kernel_allow_hosts=(f"localhost:{web_port}",),
    )
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {web_port}), timeout=5)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    async with Client(create_server(allowed)) as client:
        data = await call(client, "run_python_code", code=code)
    assert data["stdout"] == "ConnectionRefusedError\n"  # the kernel's own loopback: empty


async def test_without_an_allowlist_the_kernel_has_no_network(
    config: ServerConfig, web_port: int
) -> None:
    code = (
        "import os, socket\n"
        "print(sorted(k for k in os.environ if 'proxy' in k.lower()))\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {web_port}), timeout=5)\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    async with Client(create_server(dataclasses.replace(config, sandbox="on"))) as client:
        data = await call(client, "run_python_code", code=code)
        info = await call(client, "get_environment_info")
    assert data["stdout"] == "[]\nConnectionRefusedError\n"
    assert (info["sandbox"]["network"], info["sandbox"]["enabled"]) == ("none", True)
