"""A loopback TCP relay to the egress proxy's unix socket, run inside a sandboxed kernel.

A kernel sandboxed with `--kernel-network allowlist` lives in a network namespace with only `lo`;
the server's egress proxy is reachable through one unix socket bound into the sandbox. HTTP
clients (requests, urllib, httpx, pip, uv) take a proxy as `http://host:port`, not as a socket
path, so this relay listens on `127.0.0.1:PORT` and copies each connection to the socket and
back. `install_from_env` starts it from `PYTHON_MCP_SERVER_PROXY_SOCKET` (and optionally
`PYTHON_MCP_SERVER_PROXY_PORT`) and points `HTTP(S)_PROXY` at it, so the kernel and every
process it starts (`!pip install`) use it. Run as a script, `python relay.py -- CMD...` does the
same for one command (the package installer in its sandbox) and exits with the command's code.

Threads, not asyncio: the kernel's own event loop belongs to IPython and the user. Two daemon
threads per connection, one per direction, each with blocking reads and writes, so neither
direction can stall the other; an end of file is passed on as a half-close.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import MutableMapping

SOCKET_ENV = "PYTHON_MCP_SERVER_PROXY_SOCKET"
PORT_ENV = "PYTHON_MCP_SERVER_PROXY_PORT"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
_CHUNK = 1 << 16

_lock = threading.Lock()
_relays: dict[str, int] = {}  # unix socket path -> bound port


def _copy(src: socket.socket, dst: socket.socket, done: threading.Semaphore) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        # one side failed: end both directions, which also wakes the other thread
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    finally:
        if not done.acquire(blocking=False):  # the second thread to finish closes both
            src.close()
            dst.close()


def _connect(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        upstream.close()
        client.close()
        return
    done = threading.Semaphore(1)
    for src, dst in ((client, upstream), (upstream, client)):
        threading.Thread(
            target=_copy, args=(src, dst, done), name="pmcp-relay-copy", daemon=True
        ).start()


def _accept(listener: socket.socket, socket_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        _connect(client, socket_path)


def start_relay(port: int, socket_path: str) -> int:
    """Listen on `127.0.0.1:port` (0 picks a free port) and relay each connection to the unix
    socket `socket_path`; the bound port. Idempotent: a second call for the same socket returns
    the port of the relay already running, whatever `port` it asks for."""
    with _lock:
        if socket_path in _relays:
            return _relays[socket_path]
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        bound = int(listener.getsockname()[1])
        threading.Thread(
            target=_accept, args=(listener, socket_path), name="pmcp-relay", daemon=True
        ).start()
        _relays[socket_path] = bound
        return bound


def set_proxy_env(environ: MutableMapping[str, str], port: int) -> None:
    """Point `HTTP_PROXY`, `HTTPS_PROXY` and their lowercase twins at the relay and drop
    `NO_PROXY`: with no other route out, a host that skipped the proxy could not be reached."""
    url = f"http://127.0.0.1:{port}"
    for name in PROXY_VARS:
        environ[name] = url
    for name in NO_PROXY_VARS:
        environ.pop(name, None)


def install_from_env(environ: MutableMapping[str, str] | None = None) -> int | None:
    """Start the relay if `PYTHON_MCP_SERVER_PROXY_SOCKET` is set, and set the proxy variables;
    the relay's port, or None when the kernel has no egress proxy."""
    environ = os.environ if environ is None else environ
    socket_path = environ.get(SOCKET_ENV)
    if not socket_path:
        return None
    port = start_relay(int(environ.get(PORT_ENV) or 0), socket_path)
    set_proxy_env(environ, port)
    return port


def main(argv: list[str]) -> int:
    """`relay.py -- CMD...`: run CMD with its HTTP(S) traffic relayed to the egress proxy."""
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        sys.stderr.write("usage: relay.py -- COMMAND [ARG...]\n")
        return 2
    command = argv[argv.index("--") + 1 :]
    install_from_env(os.environ)
    try:
        code = subprocess.call(command)
    except OSError as exc:
        sys.stderr.write(f"cannot run {command[0]}: {exc}\n")
        return 127
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
