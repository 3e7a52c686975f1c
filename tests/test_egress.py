"""The egress proxy and the kernel-side relay, over real sockets on loopback and unix sockets.

Origins are small asyncio servers on 127.0.0.1; the proxy is driven with raw request lines (what
an attacker would send), through the relay with httpx and urllib (what kernels send), and from a
bare interpreter that loads the kernel-side package the way a kernel does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from ipaddress import ip_address
from pathlib import Path

import anyio
import httpx
import pytest

from python_mcp_server.errors import ConfigError
from python_mcp_server.kernel_ext import relay
from python_mcp_server.sandbox import AllowList, EgressProxy
from python_mcp_server.sandbox import egress as egress_module
from python_mcp_server.sandbox.allowlist import address_refusal, parse_rule
from python_mcp_server.services.artifacts import kernel_setup_code

pytestmark = pytest.mark.anyio

# --- the allow-list -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "host", "port", "allowed"),
    [
        (["pypi.org"], "pypi.org", 443, True),
        (["pypi.org"], "pypi.org", 80, True),
        (["pypi.org"], "pypi.org", 8080, False),
        (["pypi.org"], "PyPI.ORG.", 443, True),
        (["PyPI.org."], "pypi.org", 443, True),
        (["pypi.org"], "test.pypi.org", 443, False),
        (["pypi.org"], "pypi.org.evil.com", 443, False),
        (["*.pythonhosted.org"], "files.pythonhosted.org", 443, True),
        (["*.pythonhosted.org"], "a.b.pythonhosted.org", 80, True),
        (["*.pythonhosted.org"], "pythonhosted.org", 443, False),
        (["*.pythonhosted.org"], "evilpythonhosted.org", 443, False),
        (["*.pythonhosted.org:443"], "files.pythonhosted.org", 80, False),
        (["localhost:8123"], "localhost", 8123, True),
        (["localhost:8123"], "localhost", 443, False),
        (["localhost:8123"], "127.0.0.1", 8123, False),
        (["127.0.0.1:8123"], "127.0.0.1", 8123, True),
        (["127.0.0.1:8123"], "localhost", 8123, False),
        (["[::1]:8080"], "::1", 8080, True),
        (["[::1]:8080"], "0:0:0:0:0:0:0:1", 8080, True),
        (["[::1]"], "::1", 443, True),
        (["bücher.example"], "xn--bcher-kva.example", 443, True),
        (["example.org"], "exa_mple.org", 443, False),
        (["example.org"], "example.org\x00", 443, False),
        (["example.org"], "", 443, False),
        ([], "example.org", 443, False),
    ],
)
def test_the_allow_list_matches_names_wildcards_ports_and_ip_literals(
    patterns: list[str], host: str, port: int, allowed: bool
) -> None:
    assert AllowList.parse(patterns).allows(host, port) is allowed


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "empty"),
        ("*", "--kernel-network full"),
        ("*.org", "top-level domain"),
        ("a.*.example.org", "may only open a pattern"),
        ("http://pypi.org", "not a URL"),
        ("https://pypi.org/simple", "not a URL"),
        ("user@pypi.org", "character no host has"),
        ("pypi.org:0", "not a port"),
        ("pypi.org:65536", "not a port"),
        ("pypi.org:+80", "not a port"),
        ("pypi.org:http", "not a port"),
        ("::1", "several ':'"),
        ("[::1", "does not close"),
        ("[127.0.0.1]:80", "only an IPv6 address"),
        ("[fe80::1%eth0]", "character no host has"),
        ("127.1", "looks like an IP address"),
        ("-pypi.org", "not a host name"),
        ("py_pi.org", "not a host name"),
        ("pypi..org", "not a host name"),
        ("a" * 64 + ".org", "not a host name"),
    ],
)
def test_a_bad_pattern_is_a_config_error_naming_it_and_the_forms(pattern: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AllowList.parse(["pypi.org", pattern])
    message = str(caught.value)
    assert f"--kernel-allow-host {pattern!r}" in message
    assert why in message
    assert "HOST:PORT" in message


@pytest.mark.parametrize(
    ("pattern", "address", "refused"),
    [
        ("localhost:8000", "127.0.0.1", False),
        ("localhost:8000", "::1", False),
        ("127.0.0.1:8000", "127.0.0.1", False),
        ("pypi.org", "127.0.0.1", True),
        ("pypi.org", "127.0.1.1", True),
        ("pypi.org", "0.0.0.0", True),
        ("pypi.org", "::ffff:127.0.0.1", True),
        ("0.0.0.0:8000", "0.0.0.0", True),
        ("*.example.org", "127.0.0.1", True),
        ("*.example.org", "10.0.0.5", True),
        ("*.example.org", "169.254.169.254", True),
        ("*.example.org", "fd00::5", True),
        ("*.example.org", "::ffff:192.168.1.1", True),
        ("*.example.org", "93.184.215.14", False),
        ("mirror.corp.example", "10.0.0.5", False),
        ("pypi.org", "151.101.0.223", False),
    ],
)
def test_names_lead_to_this_machine_only_through_a_loopback_entry(
    pattern: str, address: str, refused: bool
) -> None:
    why = address_refusal(parse_rule(pattern), ip_address(address))
    assert (why is not None) is refused, why


# --- servers and clients on loopback ------------------------------------------------------------


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """A socket path short enough for AF_UNIX (pytest's tmp_path can pass 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="egress-"))
    yield folder / "proxy.sock"
    shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def origin() -> AsyncIterator[tuple[int, list[bytes]]]:
    """An HTTP origin on 127.0.0.1: answers `hello <path> <body>` and closes; keeps each head."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        body = await reader.readexactly(int(length.group(1))) if length else b""
        payload = b"hello " + head.split(b" ")[1] + (b" " + body if body else b"")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: keep-alive\r\n"
            b"Keep-Alive: timeout=5\r\n\r\n%s" % (len(payload), payload)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], heads


@asynccontextmanager
async def echo_server(close_on_eof: bool = True) -> AsyncIterator[int]:
    """A TCP echo server on 127.0.0.1; with `close_on_eof=False` it keeps the line open after."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        if close_on_eof:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
        for writer in writers:
            writer.close()


async def ask(proxy: EgressProxy, request: bytes) -> bytes:
    """Send raw bytes to the proxy; everything it answers until it closes."""
    with anyio.fail_after(5):
        reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
        writer.write(request)
        writer.write_eof()
        answer = await reader.read()
        writer.close()
        return answer


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proxy_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "cr_code", None) is not None
        and task.get_coro().cr_code.co_filename == egress_module.__file__  # type: ignore[union-attr]
    ]


# --- plain HTTP ---------------------------------------------------------------------------------


async def test_an_allowed_plain_http_request_is_forwarded_in_origin_form(
    socket_path: Path,
) -> None:
    async with origin() as (port, heads):
        allow = AllowList.parse([f"localhost:{port}"])
        async with EgressProxy(allow, socket_path) as proxy:
            assert socket_path.stat().st_mode & 0o777 == 0o666
            answer = await ask(
                proxy,
                f"POST http://LocalHost.:{port}/x?y=1 HTTP/1.1\r\nHost: localhost:{port}\r\n"
                "Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
                "X-Keep: 2\r\nContent-Length: 4\r\n\r\nbody".encode(),
            )
            assert proxy.allowed_total == 1
            assert proxy.refused_total == 0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close" in head
    assert b"keep-alive" not in head.lower()
    assert body == b"hello /x?y=1 body"
    sent = heads[0].decode()
    assert sent.startswith("POST /x?y=1 HTTP/1.1\r\n")
    assert f"\r\nHost: LocalHost.:{port}\r\n" in sent
    assert "X-Keep: 2" in sent
    assert "Connection: close" in sent
    assert "X-Drop" not in sent
    assert "Proxy-Connection" not in sent


async def test_a_host_not_on_the_list_gets_403_naming_it_and_is_counted_and_logged(
    socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.sandbox.egress")
    async with (
        origin() as (port, heads),
        EgressProxy(AllowList.parse(["*.example.org"]), socket_path) as proxy,
    ):
        answer = await ask(
            proxy,
            f"GET http://localhost:{port}/ HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode(),
        )
        assert proxy.refused_total == 1
        assert proxy.allowed_total == 0
        [refusal] = proxy.refused
    assert heads == []
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    text = answer.decode()
    assert f"localhost:{port} is not on the allow-list" in text
    assert f"--kernel-allow-host localhost:{port}" in text
    assert (refusal.host, refusal.port, refusal.status) == ("localhost", port, 403)
    assert refusal.time > 0
    logged = [r for r in caplog.records if "egress refused" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.INFO
    assert "'localhost'" in logged[0].getMessage()


async def test_a_host_header_that_names_another_host_is_refused(socket_path: Path) -> None:
    async with (
        origin() as (port, heads),
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy,
    ):
        other = await ask(
            proxy,
            f"GET http://localhost:{port}/ HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode(),
        )
        twice = await ask(
            proxy,
            f"GET http://localhost:{port}/ HTTP/1.1\r\nHost: localhost:{port}\r\n"
            f"Host: evil.example\r\n\r\n".encode(),
        )
        assert [r.host for r in proxy.refused] == [
            "evil.example",
            f"http://localhost:{port}/",
        ]
    assert other.startswith(b"HTTP/1.1 403 ")
    assert b"the Host header names another host" in other
    assert twice.startswith(b"HTTP/1.1 400 ")
    assert heads == []


@pytest.mark.parametrize(
    "request_line",
    [
        "GET ftp://localhost:{port}/file HTTP/1.1",
        "GET https://localhost:{port}/ HTTP/1.1",
        "GET http://user@localhost:{port}/ HTTP/1.1",
        "GET http://user:pw@localhost:{port}/ HTTP/1.1",
        "GET /relative HTTP/1.1",
        "GET http://localhost:{port}/ HTTP/2.0",
        "GET  http://localhost:{port}/ HTTP/1.1",
        "GET http://localhost:{port}#frag HTTP/1.1",
        "CONNECT user@localhost:{port} HTTP/1.1",
        "CONNECT localhost HTTP/1.1",
        "CONNECT {socket}:80 HTTP/1.1",
        "CONNECT [::1 HTTP/1.1",
    ],
)
async def test_malformed_and_disguised_requests_get_400_and_are_counted(
    socket_path: Path, request_line: str
) -> None:
    async with (
        origin() as (port, heads),
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy,
    ):
        line = request_line.format(port=port, socket=socket_path)
        answer = await ask(proxy, f"{line}\r\nHost: localhost:{port}\r\n\r\n".encode())
        assert proxy.refused_total == 1
        assert proxy.allowed_total == 0
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert heads == []


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://localhost/ HTTP/1.1\nHost: localhost\r\n\r\n",
        b"GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n folded\r\n\r\n",
        b"GET http://localhost/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET http://localhost/ HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        b"POST http://localhost/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
async def test_smuggling_shapes_are_refused(socket_path: Path, head: bytes) -> None:
    async with EgressProxy(AllowList.parse(["localhost"]), socket_path) as proxy:
        answer = await ask(proxy, head)
    assert answer.startswith(b"HTTP/1.1 400 "), answer


async def test_oversized_heads_get_431(socket_path: Path) -> None:
    async with EgressProxy(AllowList.parse(["localhost"]), socket_path) as proxy:
        answer = await ask(
            proxy, b"GET http://localhost/ HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        )
        assert proxy.refused[0].status == 431
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_head_that_never_ends_times_out_with_408(socket_path: Path) -> None:
    allow = AllowList.parse(["localhost"])
    async with EgressProxy(allow, socket_path, header_timeout_s=0.2) as proxy:
        with anyio.fail_after(5):
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            writer.write(b"GET http://localhost/ HTTP/1.1\r\nHost: local")
            answer = await reader.read()
            writer.close()
        assert proxy.refused[0].reason == "request head timed out"
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_an_unreachable_allowed_host_gets_502(socket_path: Path) -> None:
    port = closed_port()
    async with EgressProxy(AllowList.parse([f"127.0.0.1:{port}"]), socket_path) as proxy:
        answer = await ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    assert f"cannot connect to 127.0.0.1:{port}".encode() in answer


# --- CONNECT ------------------------------------------------------------------------------------


async def test_a_connect_tunnel_carries_bytes_both_ways(socket_path: Path) -> None:
    async with (
        echo_server() as port,
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy,
    ):
        with anyio.fail_after(5):
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            # the first bytes of the tunnel ride in the same packet as the request
            writer.write(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\nping".encode())
            assert await reader.readuntil(b"\r\n\r\n") == (
                b"HTTP/1.1 200 Connection established\r\n\r\n"
            )
            assert await reader.readexactly(4) == b"ping"
            writer.write(b"x" * 200_000)
            assert await reader.readexactly(200_000) == b"x" * 200_000
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
        assert proxy.allowed_total == 1


@pytest.mark.parametrize(
    ("allow", "target", "status"),
    [
        (["*.example.org"], "localhost:{port}", 403),
        (["*.example.org"], "LOCALHOST.:{port}", 403),
        (["*.example.org"], "127.0.0.1:{port}", 403),
        (["*.example.org"], "10.1.2.3:443", 403),
        (["*.example.org"], "[::1]:{port}", 403),
        (["localhost:{port}"], "127.0.0.1:{port}", 403),
        (["localhost:{port}"], "localhost:{other}", 403),
        (["0.0.0.0:{port}"], "0.0.0.0:{port}", 403),
        (["[::ffff:0.0.0.0]:{port}"], "[::ffff:0.0.0.0]:{port}", 403),
        (["localhost:{port}"], "LOCALHOST.:{port}", 200),
        (["127.0.0.1:{port}"], "127.0.0.1:{port}", 200),
    ],
)
async def test_connect_reaches_only_what_the_list_names(
    socket_path: Path, allow: list[str], target: str, status: int
) -> None:
    async with echo_server() as port:
        patterns = [p.format(port=port) for p in allow]
        async with EgressProxy(AllowList.parse(patterns), socket_path) as proxy:
            line = f"CONNECT {target.format(port=port, other=port + 1)} HTTP/1.1\r\n\r\n"
            answer = await ask(proxy, line.encode())
            assert proxy.refused_total == (status != 200)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer


async def test_a_client_leaving_mid_tunnel_leaves_nothing_behind(socket_path: Path) -> None:
    async with echo_server(close_on_eof=False) as port:
        proxy = EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path)
        await proxy.start()
        with anyio.fail_after(5):
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            writer.write(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\nhi".encode())
            await reader.readuntil(b"\r\n\r\n")
            assert await reader.readexactly(2) == b"hi"
            writer.close()
            await writer.wait_closed()
        assert proxy.active_connections == 1
        with anyio.fail_after(1):
            await proxy.aclose()
        assert proxy.active_connections == 0
        assert proxy_tasks() == []
        assert not socket_path.exists()


async def test_past_max_connections_new_ones_get_503(socket_path: Path) -> None:
    async with echo_server() as port:
        allow = AllowList.parse([f"localhost:{port}"])
        async with EgressProxy(allow, socket_path, max_connections=1) as proxy:
            with anyio.fail_after(5):
                reader, writer = await asyncio.open_unix_connection(str(socket_path))
                writer.write(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
                await reader.readuntil(b"\r\n\r\n")
                answer = await ask(proxy, f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
                writer.close()
            assert proxy.refused[-1].reason == "too many connections"
    assert answer.startswith(b"HTTP/1.1 503 ")


async def test_an_idle_tunnel_is_closed(socket_path: Path) -> None:
    async with echo_server(close_on_eof=False) as port:
        allow = AllowList.parse([f"localhost:{port}"])
        async with EgressProxy(allow, socket_path, idle_timeout_s=0.3):
            with anyio.fail_after(5):
                reader, writer = await asyncio.open_unix_connection(str(socket_path))
                writer.write(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
                await reader.readuntil(b"\r\n\r\n")
                assert await reader.read() == b""
                writer.close()


async def test_a_socket_path_taken_by_a_file_is_a_config_error(socket_path: Path) -> None:
    socket_path.write_text("not a socket")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        await EgressProxy(AllowList(), socket_path).start()


# --- through the kernel-side relay --------------------------------------------------------------


async def test_httpx_through_the_relay_reaches_allowed_hosts_only(socket_path: Path) -> None:
    async with (
        origin() as (port, _),
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy,
    ):
        relay_port = relay.start_relay(0, str(socket_path))
        assert relay.start_relay(0, str(socket_path)) == relay_port
        with anyio.fail_after(5):
            async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{relay_port}") as client:
                ok = await client.get(f"http://localhost:{port}/through")
                refused = await client.get(f"http://127.0.0.1:{port}/through")
        assert (proxy.allowed_total, proxy.refused_total) == (1, 1)
    assert (ok.status_code, ok.text) == (200, "hello /through")
    assert refused.status_code == 403
    assert f"--kernel-allow-host 127.0.0.1:{port}" in refused.text


async def test_urllib_connect_tunnel_through_the_relay(socket_path: Path) -> None:
    async with (
        echo_server() as port,
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path),
    ):
        relay_port = relay.start_relay(0, str(socket_path))

        def tunnel() -> bytes:
            with socket.create_connection(("127.0.0.1", relay_port), timeout=5) as sock:
                sock.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
                sock.sendall(b"ping")
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while data := sock.recv(4096):
                    chunks.append(data)
                return b"".join(chunks)

        with anyio.fail_after(5):
            answer = await anyio.to_thread.run_sync(tunnel)
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\nping"


def test_the_proxy_variables_point_at_the_relay_and_no_proxy_is_dropped() -> None:
    environ = {"NO_PROXY": "*", "no_proxy": "localhost", "HTTP_PROXY": "http://elsewhere:1"}
    relay.set_proxy_env(environ, 4321)
    assert environ == dict.fromkeys(relay.PROXY_VARS, "http://127.0.0.1:4321")
    assert relay.install_from_env({}) is None


# The program a bare interpreter runs: the kernel-side setup, then urllib with no explicit proxy.
_FETCH = (
    "import json, os, sys, urllib.request, urllib.error\n"
    "eval(sys.argv[1])\n"
    "def get(url):\n"
    "    try:\n"
    "        with urllib.request.urlopen(url, timeout=5) as r:\n"
    "            return [r.status, r.read().decode()]\n"
    "    except urllib.error.HTTPError as e:\n"
    "        return [e.code, e.read().decode()]\n"
    "print(json.dumps({'env': os.environ.get('HTTP_PROXY'), 'no_proxy': os.environ.get('NO_PROXY'),\n"
    "                  'ok': get(sys.argv[2]), 'refused': get(sys.argv[3])}))\n"
)


async def test_a_kernel_setup_with_the_proxy_socket_sends_urllib_through_it(
    socket_path: Path, tmp_path: Path
) -> None:
    async with (
        origin() as (port, _),
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy,
    ):
        env = {
            "PATH": os.environ["PATH"],
            "PYTHON_MCP_SERVER_WORKSPACE": str(tmp_path),
            "PYTHON_MCP_SERVER_PROXY_SOCKET": str(socket_path),
            "NO_PROXY": "localhost,127.0.0.1",
        }
        argv = [sys.executable, "-I", "-S", "-c", _FETCH, kernel_setup_code()]
        argv += [f"http://localhost:{port}/k", f"http://127.0.0.1:{port}/k"]
        with anyio.fail_after(20):
            done = await anyio.run_process(argv, env=env, cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert (proxy.allowed_total, proxy.refused_total) == (1, 1)
    report = json.loads(done.stdout)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", report["env"])
    assert report["no_proxy"] is None
    assert report["ok"] == [200, "hello /k"]
    assert report["refused"][0] == 403


async def test_an_upstream_that_answers_no_http_gets_502(socket_path: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy:
        answer = await ask(proxy, f"GET http://localhost:{port}/ HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    assert b"SSH" not in answer


async def test_many_requests_at_once_through_the_relay(socket_path: Path) -> None:
    async with (
        origin() as (port, heads),
        EgressProxy(AllowList.parse([f"localhost:{port}"]), socket_path) as proxy,
    ):
        relay_port = relay.start_relay(0, str(socket_path))
        with anyio.fail_after(10):
            async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{relay_port}") as client:
                answers = await asyncio.gather(
                    *(client.get(f"http://localhost:{port}/{i}") for i in range(20))
                )
        assert proxy.allowed_total == 20
    assert [a.text for a in answers] == [f"hello /{i}" for i in range(20)]
    assert len(heads) == 20


def test_the_relay_hangs_up_when_the_proxy_socket_is_missing(socket_path: Path) -> None:
    relay_port = relay.start_relay(0, str(socket_path))
    with socket.create_connection(("127.0.0.1", relay_port), timeout=5) as sock:
        assert sock.recv(100) == b""
