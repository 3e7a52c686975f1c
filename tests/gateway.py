"""Jupyter Kernel Gateway 3 for the tests: its own virtual environment, a private kernelspec, a
gateway process on a loopback port, and the REST calls tests make to it.

The gateway's pins differ from ours, so it never runs in the project's environment: `uv` builds
a venv for it once, keyed by our Python and the pins, under the user's cache folder. Its kernel
side (ipykernel, matplotlib, numpy, pandas, ...) has the versions the project's environment has,
so a kernel on the gateway behaves like a local one. The venv is built in a temporary folder and
renamed into place, so a second pytest process either sees a whole venv or builds its own and
throws it away when it loses the rename: no lock needed.

What passes from a `POST /api/kernels` body's `env` to the kernel (Kernel Gateway 3,
`kernel_gateway/services/kernels/handlers.py`): every `KERNEL_*` variable, plus the names in
`JupyterWebsocketPersonality.env_whitelist` (here `CLIENT_ENV`), plus `PATH` and the names in
`KernelGatewayApp.env_process_whitelist` taken from the gateway's own environment (here
`GATEWAY_ENV`: home and the package index settings).
Nothing else: the kernel's environment is built from those alone, with `KERNEL_GATEWAY=1` added.
A body without `env` gives the kernel the gateway's whole environment (minus `KG_AUTH_TOKEN`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
KG_REQUIREMENT = "jupyter-kernel-gateway==3.0.1"
# The kernel side, pinned to the versions of the project's environment.
KERNEL_PACKAGES = (
    "ipykernel",
    "matplotlib",
    "numpy",
    "pandas",
    "pillow",
    "cloudpickle",
    "seaborn",
    "plotly",
)
# The kernelspec the gateway starts by default (message interrupts), and one with signal interrupts.
KERNEL_NAME = "python3"
SIGNAL_KERNEL_NAME = "python3-signal"
# What a client's POST /api/kernels `env` may set besides KERNEL_*: what the server sends a kernel.
CLIENT_ENV = ("PYTHON_MCP_SERVER_WORKSPACE", "MPLBACKEND", "PYTHONUNBUFFERED")
# What kernels take from the gateway's own environment besides PATH: where home is and how this
# machine reaches its package index (an installer run by a kernel needs them, as on any host).
GATEWAY_ENV = (
    "HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_CACHE_DIR",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
)
NODELAY_CONFIG = REPO / "deploy" / "gateway" / "nodelay_config.py"
CACHE_ENV = "PYTHON_MCP_SERVER_TEST_CACHE"
# Failures of `uv pip install` that mean "no index and not cached", not "the harness is broken".
_NETWORK_FAILURES = (
    "network was disabled",
    "Failed to fetch",
    "error sending request",
    "tcp connect error",
    "dns error",
    "failed to lookup address",
    "operation timed out",
)
_ENV_PREFIXES_DROPPED = ("KG_", "JUPYTER_", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")


class GatewayUnavailableError(Exception):
    """The gateway's environment cannot be built on this machine: the package index is out of
    reach and uv's cache lacks a package."""


def requirements() -> list[str]:
    """What the gateway's venv gets: Kernel Gateway, and the kernel side at our versions."""
    return [KG_REQUIREMENT, *(f"{p}=={importlib.metadata.version(p)}" for p in KERNEL_PACKAGES)]


def cache_root() -> Path:
    """`$PYTHON_MCP_SERVER_TEST_CACHE`, else `$XDG_CACHE_HOME/python-mcp-server-tests`, else
    `~/.cache/python-mcp-server-tests`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "python-mcp-server-tests"


def _base_python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def venv_key(pins: list[str]) -> str:
    """Names the venv: our interpreter (path and version) and the pins."""
    identity = [_base_python(), sys.version, platform.machine(), *pins]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES_DROPPED)}
    env.setdefault("UV_HTTP_TIMEOUT", "30")
    return env


def _run_uv(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_uv(), *args],
        check=False,
        cwd=cwd,
        env=_uv_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def gateway_venv() -> Path:
    """The gateway's venv, built now if the cache lacks it (under a second from uv's cache).

    Raises:
        GatewayUnavailableError: the index is out of reach and uv's cache lacks a package.
    """
    pins = requirements()
    root = cache_root()
    final = root / f"kg-{venv_key(pins)}"
    if (final / "pins.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root)
    building = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        _build(building / "venv", pins)
        (building / "venv" / "pins.json").write_text(json.dumps(pins, indent=1) + "\n")
        with contextlib.suppress(OSError):  # another process renamed its build first: use it
            (building / "venv").rename(final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if not (final / "pins.json").is_file():
        raise RuntimeError(f"the gateway venv {final} is incomplete; delete it and run again")
    return final


def _remove_stale_builds(root: Path) -> None:
    for old in root.glob(".build-*"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)


def _build(venv: Path, pins: list[str]) -> None:
    made = _run_uv(
        ["venv", "--quiet", "--relocatable", "--python", _base_python(), str(venv)], venv.parent
    )
    if made.returncode:
        raise RuntimeError(f"uv venv {venv} failed:\n{made.stderr}")
    install = ["pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *pins]
    if _run_uv([*install, "--offline"], venv.parent).returncode == 0:
        return
    online = _run_uv(install, venv.parent)
    if online.returncode == 0:
        return
    if any(marker.lower() in online.stderr.lower() for marker in _NETWORK_FAILURES):
        lines = [line.strip() for line in online.stderr.strip().splitlines()]
        said = next((line for line in lines if line.startswith("error:")), lines[-1])
        raise GatewayUnavailableError(
            f"cannot build Kernel Gateway's venv: the package index is out of reach and uv's "
            f"cache lacks {' '.join(pins)} (uv: {said} / {lines[-1]})"
        )
    raise RuntimeError(f"uv pip install {' '.join(pins)} failed:\n{online.stderr}")


def write_kernelspecs(jupyter_path: Path, python: Path) -> None:
    """`KERNEL_NAME` (message interrupts) and `SIGNAL_KERNEL_NAME` (signal interrupts), both
    running the gateway venv's ipykernel, in `jupyter_path/kernels`."""
    for name, mode in ((KERNEL_NAME, "message"), (SIGNAL_KERNEL_NAME, "signal")):
        folder = jupyter_path / "kernels" / name
        folder.mkdir(parents=True, exist_ok=True)
        spec = {
            "argv": [
                str(python),
                *("-m", "ipykernel_launcher", "-f", "{connection_file}"),
                "--HistoryManager.enabled=False",
            ],
            "display_name": f"Python (gateway tests, {mode} interrupts)",
            "language": "python",
            "interrupt_mode": mode,
            "metadata": {"debugger": False},
        }
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class GatewayOptions:
    """How a gateway runs. Culling is off unless `cull_idle_timeout_s` is set."""

    cull_idle_timeout_s: int = 0
    cull_interval_s: int = 300
    cull_connected: bool = False
    list_kernels: bool = True
    extra_args: tuple[str, ...] = ()
    root_dir: Path | None = None  # kernels' working folder (default: a folder of its own)


class KernelGateway:
    """One Kernel Gateway process on 127.0.0.1, and the REST calls tests make to it.

    `stop()` and `start()` take it down and bring it back on the same port and token (kernels do
    not survive: Kernel Gateway keeps them in memory); `pause()` and `resume()` freeze it, so it
    accepts connections but never answers.
    """

    def __init__(self, venv: Path, workdir: Path, options: GatewayOptions | None = None) -> None:
        self.venv = venv
        self.options = options or GatewayOptions()
        self.workdir = workdir
        # kernels' working folder; a body's `path` is under it
        self.root_dir = self.options.root_dir or workdir / "root"
        self.jupyter_path = workdir / "jupyter"
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.kernel_name = KERNEL_NAME
        self.log = workdir / "gateway.log"
        self.starts = 0  # how many times it started and answered
        self._process: subprocess.Popen[bytes] | None = None
        self.root_dir.mkdir(parents=True, exist_ok=True)
        write_kernelspecs(self.jupyter_path, venv / "bin" / "python")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def client(self, timeout_s: float = 10.0) -> httpx.Client:
        """An httpx client with the gateway's base URL and token."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout_s)

    def async_client(self, timeout_s: float = 10.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout_s)

    def command(self) -> list[str]:
        o = self.options
        whitelist = [f"--JupyterWebsocketPersonality.env_whitelist={name}" for name in CLIENT_ENV]
        whitelist += [f"--KernelGatewayApp.env_process_whitelist={name}" for name in GATEWAY_ENV]
        return [
            str(self.venv / "bin" / "python"),
            *("-m", "kernel_gateway", "--ip=127.0.0.1", f"--port={self.port}", "--port_retries=0"),
            f"--JupyterWebsocketPersonality.list_kernels={o.list_kernels}",
            *whitelist,
            f"--KernelGatewayApp.default_kernel_name={KERNEL_NAME}",
            "--KernelSpecManager.ensure_native_kernel=False",
            f"--MappingKernelManager.root_dir={self.root_dir}",
            f"--MappingKernelManager.cull_idle_timeout={o.cull_idle_timeout_s}",
            f"--MappingKernelManager.cull_interval={o.cull_interval_s}",
            f"--MappingKernelManager.cull_connected={o.cull_connected}",
            f"--config={NODELAY_CONFIG}",
            *o.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES_DROPPED)}
        private = self.workdir / "jupyter-home"
        return {
            **env,
            "KG_AUTH_TOKEN": self.token,
            "JUPYTER_PATH": str(self.jupyter_path),
            "JUPYTER_CONFIG_DIR": str(private / "config"),
            "JUPYTER_DATA_DIR": str(private / "data"),
            "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
        }

    def start(self, deadline_s: float = 30.0) -> None:
        """Start the gateway and wait until `GET /api` answers. The first start takes a free port
        (a new one if it was taken meanwhile); later starts reuse it."""
        if self.running:
            raise RuntimeError(f"the gateway on port {self.port} is already running")
        for _attempt in range(3):
            self._spawn()
            try:
                self._wait_until_answering(deadline_s)
            except _PortTakenError:
                if self.starts > 0:
                    raise RuntimeError(
                        f"port {self.port} was taken while the gateway was down:\n{self.log_text()}"
                    ) from None
                self.port = free_port()
            else:
                self.starts += 1
                return
        raise RuntimeError(f"no free port for the gateway:\n{self.log_text()}")

    def _spawn(self) -> None:
        with self.log.open("ab") as sink:
            sink.write(f"--- start: {' '.join(self.command())}\n".encode())
            sink.flush()
            self._process = subprocess.Popen(
                self.command(),
                cwd=self.root_dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_answering(self, deadline_s: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + deadline_s
        with self.client(timeout_s=2.0) as client:
            while True:
                if self._process.poll() is not None:
                    text = self.log_text()
                    if "already in use" in text.rsplit("--- start", 1)[-1]:
                        raise _PortTakenError
                    raise RuntimeError(
                        f"the gateway exited with {self._process.returncode}:\n{text}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/api").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"the gateway did not answer in {deadline_s} s:\n{self.log_text()}"
                    )
                time.sleep(0.05)

    def stop(self, *, kill: bool = False, grace_s: float = 15.0) -> None:
        """Take the gateway down: SIGTERM (it shuts its kernels down), then SIGKILL after
        `grace_s`. With `kill`, SIGKILL at once, as a crash would, and its kernels after it."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        kernels = _children(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused gateway cannot act on SIGTERM
        if not kill:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace_s)
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in kernels:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted, nothing is answered (a hung gateway)."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def down(self, *, kill: bool = False) -> Iterator[None]:
        """The gateway stopped for the block, started again (same port and token) after it."""
        self.stop(kill=kill)
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        """Delete the kernels left, then stop the gateway."""
        if self.running:
            with contextlib.suppress(httpx.HTTPError):
                self.delete_all_kernels()
        self.stop()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def list_kernels(self) -> list[dict[str, Any]]:
        """`GET /api/kernels`: each kernel's id, name, execution_state, connections, ..."""
        with self.client() as client:
            response = client.get("/api/kernels")
            response.raise_for_status()
            kernels: list[dict[str, Any]] = response.json()
            return kernels

    def kernel_ids(self) -> set[str]:
        return {k["id"] for k in self.list_kernels()}

    def start_kernel(
        self, env: Mapping[str, str] | None = None, name: str | None = None, path: str | None = None
    ) -> str:
        """`POST /api/kernels`; the new kernel's id."""
        body: dict[str, Any] = {"name": name or self.kernel_name}
        if env is not None:
            body["env"] = dict(env)
        if path is not None:
            body["path"] = path
        with self.client(timeout_s=60.0) as client:
            response = client.post("/api/kernels", json=body)
            response.raise_for_status()
            return str(response.json()["id"])

    def delete_kernel(self, kernel_id: str) -> None:
        """`DELETE /api/kernels/{id}`; a kernel already gone is not an error."""
        with self.client(timeout_s=30.0) as client:
            response = client.delete(f"/api/kernels/{kernel_id}")
            if response.status_code != 404:
                response.raise_for_status()

    def delete_all_kernels(self) -> None:
        for kernel_id in self.kernel_ids():
            self.delete_kernel(kernel_id)

    def wait_for_kernel_gone(self, kernel_id: str, deadline_s: float = 30.0) -> None:
        """Poll `GET /api/kernels` until `kernel_id` is not listed (culled, deleted)."""
        deadline = time.monotonic() + deadline_s
        while kernel_id in self.kernel_ids():
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernel {kernel_id} still listed after {deadline_s} s")
            time.sleep(0.1)


class _PortTakenError(Exception):
    pass


def _children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (a gateway's kernels)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found
