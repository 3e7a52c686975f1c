"""Check nodelay_config.py against a real gateway on loopback: socket option and round trips.

Run it with the gateway's own interpreter (it needs only the standard library and websocket-client,
which jupyter_server already depends on); the gateway runs from that same environment:

    uv venv /tmp/kgv && VIRTUAL_ENV=/tmp/kgv uv pip install jupyter-kernel-gateway ipykernel
    /tmp/kgv/bin/python deploy/gateway/check_nodelay.py kernelgateway

    # Enterprise Gateway 3.3 (its pins need their own venv)
    /tmp/egv/bin/python deploy/gateway/check_nodelay.py enterprisegateway

It starts two gateways on free loopback ports, one with ``--config=nodelay_config.py`` and one
without, opens a kernel on each over REST and the channels websocket, reads TCP_NODELAY on the
*gateway's* end of each websocket (pidfd_getfd, Linux 5.6+: the gateways are this process's
children), times ``kernel_info`` round trips on both, interleaved, then deletes the kernels and
stops the gateways by PID. Exit status 0 when the configured gateway has TCP_NODELAY on.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websocket  # websocket-client, a dependency of jupyter_server

CONFIG = Path(__file__).with_name("nodelay_config.py")
STARTUP_DEADLINE_S = 60.0
REPLY_DEADLINE_S = 30.0
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


@dataclass
class Gateway:
    label: str
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gw.url + path, data=data, method=method)
    req.add_header("Authorization", f"token {gw.token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=REPLY_DEADLINE_S) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


@contextlib.contextmanager
def gateway(
    kind: str, label: str, extra: list[str], extra_env: dict[str, str]
) -> Iterator[Gateway]:
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ) | extra_env
    prefix = "KG" if kind == "kernelgateway" else "EG"
    env[f"{prefix}_AUTH_TOKEN"] = token
    jupyter = Path(sys.executable).with_name("jupyter")
    argv = [str(jupyter), kind, "--ip=127.0.0.1", f"--port={port}", "--port_retries=0", *extra]
    log_path = Path(tempfile.gettempdir()) / f"check-nodelay-{label}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    gw = Gateway(label, f"http://127.0.0.1:{port}", token, proc, log_path)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{label}: gateway exited; see {log_path}")
            try:
                info = request(gw, "GET", "/api")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{label}: gateway not up in {STARTUP_DEADLINE_S}s") from None
                time.sleep(0.1)  # polling with a bounded deadline
        shown = " ".join([*(f"{k}={v}" for k, v in extra_env.items()), *argv[1:]])
        print(f"{label}: {shown} -> {info}")
        yield gw
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def message(msg_type: str, session: str) -> dict[str, Any]:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "check",
        "session": session,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": "5.3",
    }
    return {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": {},
        "channel": "shell",
        "buffers": [],
    }


class KernelChannel:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        kernel = request(gw, "POST", "/api/kernels", {"env": {"KERNEL_USERNAME": "check"}})
        self.kernel_id = kernel["id"]
        self.session = uuid.uuid4().hex
        ws_url = gw.url.replace("http", "ws", 1)
        url = f"{ws_url}/api/kernels/{self.kernel_id}/channels?session_id={self.session}"
        self.ws = websocket.create_connection(
            url, header=[f"Authorization: token {gw.token}"], timeout=REPLY_DEADLINE_S
        )
        # the kernel may still be starting: ask until it answers
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while not self.kernel_info(timeout=2.0):
            if time.monotonic() > deadline:
                raise SystemExit(f"{gw.label}: kernel never answered kernel_info")

    def kernel_info(self, timeout: float = REPLY_DEADLINE_S) -> float | None:
        """Seconds for one kernel_info round trip, or None if no reply within timeout."""
        msg = message("kernel_info_request", self.session)
        start = time.perf_counter()
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                reply = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return None
            if (
                reply.get("msg_type") == "kernel_info_reply"
                and reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]
            ):
                return time.perf_counter() - start
        return None

    def server_side_nodelay(self) -> int:
        """TCP_NODELAY on the gateway's end of this websocket, read from the gateway process."""
        if self.ws.sock is None:
            raise SystemExit(f"{self.gw.label}: the websocket is closed")
        local = self.ws.sock.getsockname()
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(self.gw.process.pid)
        try:
            for entry in os.listdir(f"/proc/{self.gw.process.pid}/fd"):
                if not os.readlink(f"/proc/{self.gw.process.pid}/fd/{entry}").startswith("socket:"):
                    continue
                fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(entry), 0)
                if fd < 0:
                    raise OSError(ctypes.get_errno(), "pidfd_getfd failed")
                with socket.socket(fileno=fd) as s:
                    if s.family != socket.AF_INET or s.type != socket.SOCK_STREAM:
                        continue
                    with contextlib.suppress(OSError):
                        if s.getpeername() == local:
                            return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            os.close(pidfd)
        raise SystemExit(f"{self.gw.label}: found no gateway socket peered with {local}")

    def close(self) -> None:
        self.ws.close()
        request(self.gw, "DELETE", f"/api/kernels/{self.kernel_id}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["kernelgateway", "enterprisegateway"])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--via-config-path",
        action="store_true",
        help="load the file as the gateway's own config file from JUPYTER_CONFIG_PATH (the way "
        "deploy/kubernetes and deploy/compose deliver it) instead of with --config",
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.via_config_path:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            app = "enterprise_gateway" if args.kind == "enterprisegateway" else "kernel_gateway"
            (folder / f"jupyter_{app}_config.py").write_bytes(CONFIG.read_bytes())
            how: tuple[list[str], dict[str, str]] = ([], {"JUPYTER_CONFIG_PATH": str(folder)})
        else:
            how = ([f"--config={CONFIG}"], {})
        flags, times = measure(
            stack.enter_context(gateway(args.kind, "plain", [], {})),
            stack.enter_context(gateway(args.kind, "nodelay", *how)),
            args.rounds,
        )
    for label in ("plain", "nodelay"):
        ms = sorted(t * 1000 for t in times[label])
        print(
            f"{label:8s} gateway-side TCP_NODELAY={flags[label]}  kernel_info round trip "
            f"median {statistics.median(ms):.1f} ms  p10 {ms[len(ms) // 10]:.1f}  "
            f"p90 {ms[len(ms) * 9 // 10]:.1f}  (n={len(ms)})"
        )
    return 0 if flags["nodelay"] else 1


def measure(
    plain_gw: Gateway, nodelay_gw: Gateway, rounds: int
) -> tuple[dict[str, int], dict[str, list[float]]]:
    """TCP_NODELAY on each gateway's end of a kernel websocket, and interleaved round trips."""
    with contextlib.ExitStack() as kernels:
        plain = KernelChannel(plain_gw)
        kernels.callback(plain.close)
        nodelay = KernelChannel(nodelay_gw)
        kernels.callback(nodelay.close)
        flags = {"plain": plain.server_side_nodelay(), "nodelay": nodelay.server_side_nodelay()}
        times: dict[str, list[float]] = {"plain": [], "nodelay": []}
        for _ in range(rounds):  # interleaved, so both see the same machine load
            for label, channel in (("plain", plain), ("nodelay", nodelay)):
                took = channel.kernel_info()
                if took is None:
                    raise SystemExit(f"{label}: kernel_info timed out")
                times[label].append(took)
    return flags, times


if __name__ == "__main__":
    sys.exit(main())
