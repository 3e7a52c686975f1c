"""Finding and running the package installer: argv only, its own process group, a hard timeout,
and (when kernels are sandboxed) a sandbox of its own.

The installer is uv (a dependency of this package; `uv pip install --python <kernel python>`),
else `<kernel python> -m pip install`. Sandboxed, it runs in bubblewrap with the system and the
interpreter read-only, only the target environment and its cache writable, no capabilities, and
the network only through an egress proxy that allows the package index hosts and nothing else
(`sandbox/install.py` says which). The proxy lives for one install; the hosts it refused are
reported with the result. Work nobody waits for (a layer built in the background) runs under
`nice -n 19`, so kernels starting meanwhile get the CPU first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import anyio

from python_mcp_server.config import SECRET_ENV_VARS, ServerConfig
from python_mcp_server.errors import ConfigError, PackageError
from python_mcp_server.kernels.messages import strip_ansi
from python_mcp_server.sandbox import AllowList, EgressProxy
from python_mcp_server.sandbox.host import SandboxPlan
from python_mcp_server.sandbox.install import index_access, install_target
from python_mcp_server.sandbox.launch import Sandbox, interpreter_prefixes, write_etc
from python_mcp_server.services._kernel_ext import KERNEL_EXT_DIR
from python_mcp_server.services._pythons import is_binary

_KEEP_BYTES = 256_000
Installer = Literal["uv", "pip"]
# what a sandboxed installer keeps of the server's environment: its own settings and certificates
_INSTALLER_ENV_PREFIXES = ("UV_", "PIP_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_QUIET_ENV = {"NO_COLOR": "1", "UV_NO_PROGRESS": "1", "PIP_NO_INPUT": "1"}
_LOWEST_PRIORITY = 19


@cache
def uv_binary() -> str | None:
    """The uv executable: the one this package depends on, else one on PATH (resolved through
    shims to the real file, so it also runs in a sandbox that cannot see the shim's tool)."""
    try:
        from uv import find_uv_bin

        return str(Path(find_uv_bin()).resolve())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        return str(Path(found).resolve()) if found and is_binary(found) else None


def find_installer(python: str, *, source_builds: bool = False) -> tuple[Installer, list[str]]:
    """The installer's argv prefix: uv, else pip; wheels only unless `source_builds`."""
    uv = uv_binary()
    if uv is not None:
        binary = [] if source_builds else ["--only-binary", ":all:"]
        return "uv", [uv, "pip", "install", "--python", python, *binary]
    binary = [] if source_builds else ["--only-binary=:all:"]
    return "pip", [
        python,
        *("-m", "pip", "install", "--disable-pip-version-check", "--no-input", *binary),
    ]


@cache
def uv_cache_dir(uv: str) -> Path | None:
    """uv's cache folder as the server's environment configures it (made if missing)."""
    try:
        out = subprocess.run(
            [uv, "cache", "dir"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(out)
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path if path.is_dir() else None


@dataclass
class InstallerRun:
    """How an install ended: exit code (None on timeout), output, and hosts the proxy refused."""

    returncode: int | None
    output: str
    refused: list[str] = field(default_factory=list)


class InstallSandbox:
    """Runs installs in a sandbox of their own (bubblewrap, index hosts only)."""

    def __init__(self, plan: SandboxPlan, config: ServerConfig) -> None:
        self._plan = plan
        self._config = config
        try:
            AllowList.parse(config.install_allow_hosts)
        except ConfigError as exc:
            flag = "--install-allow-host"
            raise ConfigError(str(exc).replace("--kernel-allow-host", flag, 1)) from None

    @asynccontextmanager
    async def confine(
        self,
        argv: list[str],
        python: str,
        environ: Mapping[str, str],
        target: Path | None = None,
        readable: Sequence[Path] = (),
    ) -> AsyncIterator[tuple[list[str], tuple[int, ...], EgressProxy]]:
        """The sandboxed argv, the descriptors it must inherit, and its egress proxy. It writes
        `target` (default: the interpreter's environment) and the installer's cache, and reads
        `readable` besides the workspace and the interpreter."""
        prefixes = interpreter_prefixes(python)
        if prefixes is None:
            raise PackageError(f"The kernel's interpreter {python} cannot run.")
        target = target or install_target(*prefixes)
        if target is None:
            raise PackageError(
                f"The kernel's interpreter {python} is the system's Python (prefix "
                f"{prefixes[0]}), whose packages belong to the system's package manager. Point "
                "the server at a virtual environment's interpreter (python -m venv), or run "
                "with --sandbox off to install into it anyway."
            )
        access = index_access(environ, self._config.install_allow_hosts)
        env = {k: v for k, v in environ.items() if k.startswith(_INSTALLER_ENV_PREFIXES)}
        env = {k: v for k, v in env.items() if k not in SECRET_ENV_VARS} | _QUIET_ENV
        writable = [target]
        cache_dir = uv_cache_dir(argv[0]) if Path(argv[0]).name == "uv" else None
        if cache_dir is not None:
            # one mount for the cache and a target inside it (an environment layer being built),
            # so uv can hard-link from one to the other
            writable = [cache_dir] if _under_any(target, [cache_dir]) else [target, cache_dir]
            # a cache on another mount cannot be hard-linked from: copy, without a warning
            env |= {"UV_CACHE_DIR": str(cache_dir), "UV_LINK_MODE": "copy"}
        else:
            env |= {"UV_NO_CACHE": "1", "PIP_NO_CACHE_DIR": "1"}
        read_only = [self._config.workspace_root, *access.folders, KERNEL_EXT_DIR, *readable]
        if not _under_any(Path(argv[0]), [*writable, *read_only]):
            read_only.append(Path(argv[0]))
        folder = Path(tempfile.mkdtemp(prefix="python-mcp-server-install-"))
        try:
            etc = write_etc(folder / "etc")
            allow = AllowList.parse(list(access.hosts))
            async with EgressProxy(allow, folder / "egress.sock") as proxy:
                sandbox = Sandbox(
                    self._plan,
                    etc,
                    network="allowlist",
                    tmp_mb=self._config.kernel_tmp_mb,
                    proxy_socket=proxy.socket_path,
                )
                launch = sandbox.launch_installer(
                    argv,
                    python=python,
                    relay=KERNEL_EXT_DIR / "relay.py",
                    writable=writable,
                    read_only=read_only,
                    env=env,
                )
                try:
                    yield launch.argv, launch.pass_fds, proxy
                finally:
                    launch.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _under_any(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


async def run_installer(
    argv: list[str],
    limit_s: float,
    cwd: Path,
    python: str,
    sandbox: InstallSandbox | None = None,
    target: Path | None = None,
    *,
    lowest_priority: bool = False,
    constraints: Sequence[str] = (),
) -> InstallerRun:
    """Run the installer, sandboxed when `sandbox` is given (writing only `target`, default the
    interpreter's environment, and the cache), at the lowest CPU priority if asked, holding the
    `constraints` (`name==version` lines: what may be installed must match them). Never a
    shell."""
    prefix = _niced() if lowest_priority else []
    with _constraints_file(constraints) as (extra, folders):
        argv = [*argv, *extra]
        if sandbox is None:
            env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV_VARS} | _QUIET_ENV
            code, output = await _run([*prefix, *argv], limit_s, cwd, env, ())
            return InstallerRun(code, output)
        confined = sandbox.confine(argv, python, os.environ, target, folders)
        async with confined as (sandboxed, fds, proxy):
            code, output = await _run([*prefix, *sandboxed], limit_s, cwd, {}, fds)
            refused = [f"{r.host}:{r.port} ({r.reason})" for r in proxy.refused]
    return InstallerRun(code, output, list(dict.fromkeys(refused)))


@contextmanager
def _constraints_file(constraints: Sequence[str]) -> Iterator[tuple[list[str], list[Path]]]:
    """The installer's arguments for `constraints` (uv and pip both read `--constraint FILE`),
    and the folder holding that file, removed afterwards; nothing without constraints."""
    if not constraints:
        yield [], []
        return
    folder = Path(tempfile.mkdtemp(prefix="python-mcp-server-constraints-"))
    try:
        path = folder / "constraints.txt"
        path.write_text("".join(f"{line}\n" for line in constraints), encoding="utf-8")
        # versions, nothing secret: readable by a sandboxed installer running as another user
        folder.chmod(0o755)
        path.chmod(0o644)
        yield ["--constraint", str(path)], [folder]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@cache
def _niced() -> list[str]:
    """`nice -n 19`, which the process and all it starts inherit (empty without `nice`)."""
    found = shutil.which("nice")
    return [found, "-n", str(_LOWEST_PRIORITY)] if found else []


async def _run(
    argv: list[str], limit_s: float, cwd: Path, env: dict[str, str], fds: tuple[int, ...]
) -> tuple[int | None, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            pass_fds=fds,
        )
    except OSError as exc:
        raise PackageError(f"The installer {argv[0]} could not be started: {exc}.") from exc
    buffer = bytearray()

    async def pump() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            buffer.extend(chunk)
            del buffer[:-_KEEP_BYTES]

    try:
        with anyio.move_on_after(limit_s) as scope:
            await pump()
            await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with anyio.CancelScope(shield=True):
                await proc.wait()
    output = strip_ansi(buffer.decode("utf-8", "replace"))
    return (None if scope.cancelled_caught else proc.returncode), output
