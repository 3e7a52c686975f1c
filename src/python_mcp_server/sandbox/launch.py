"""The command that starts a kernel inside bubblewrap, and what the launch needs around it.

The kernel sees: the system's `/usr` and the Python runtime read-only, a synthetic `/etc`, its own
`/proc` and `/dev`, a private size-limited `/tmp` and `/dev/shm`, the workspace read-write at its
real path (so paths in results stay true) and its own folder of connection file and ipc sockets.
It runs in its own mount, pid, ipc, uts and (unless `--kernel-network full`) network namespaces,
as uid 65534 with no capabilities and no_new_privs, and it dies with the server. The environment
is rebuilt from nothing: the server's own variables (its token among them) never reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from python_mcp_server.procs.limits import LimitGroup
from python_mcp_server.sandbox.fonts import FontCache
from python_mcp_server.sandbox.host import SANDBOX_UID, SandboxPlan
from python_mcp_server.sandbox.seccomp import filter_program

PROXY_SOCKET_ENV = "PYTHON_MCP_SERVER_PROXY_SOCKET"  # read by the kernel-side relay
# variables of the server's environment a kernel keeps (numerics and locale; nothing secret)
PASSED_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "LC_", "LANG", "TZ")
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# host /etc entries a kernel may read: certificates, fonts, time zone, library cache, mime types
_HOST_ETC = ("ssl", "ca-certificates", "fonts", "alternatives", "ld.so.cache", "mime.types")
_SYNTHETIC_ETC = {
    "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "sandbox:x:65534:65534:sandbox:/tmp:/usr/sbin/nologin\n",
    "group": "root:x:0:\nsandbox:x:65534:\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "resolv.conf": "",
    "hostname": "sandbox\n",
}


@cache
def interpreter_prefixes(python: str) -> tuple[Path, Path] | None:
    """An interpreter's `sys.prefix` and `sys.base_prefix` (they differ in a venv), or None when
    it cannot run."""
    try:
        out = subprocess.run(
            [python, "-I", "-c", "import sys,json;print(json.dumps([sys.prefix,sys.base_prefix]))"],
            capture_output=True,
            timeout=30,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
        prefix, base = json.loads(out)
        return Path(prefix).resolve(), Path(base).resolve()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None  # the kernel start (or the install) then reports the interpreter's own error


@cache
def python_roots(python: str) -> tuple[Path, ...]:
    """The folders an interpreter needs: its prefixes (a venv and the base it was made from)."""
    roots = {Path(python).parent.parent, Path(python).resolve().parent.parent}
    roots.update(interpreter_prefixes(python) or ())
    return tuple(sorted(r for r in roots if not _under(r, Path("/usr"))))


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def write_etc(folder: Path) -> Path:
    """The synthetic /etc every sandboxed kernel sees (no users, no secrets of the host)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in _SYNTHETIC_ETC.items():
        (folder / name).write_text(text)
    for name in _HOST_ETC:
        host = Path("/etc") / name
        if host.is_dir():
            (folder / name).mkdir(exist_ok=True)
        elif host.exists():
            (folder / name).touch()
    localtime = Path("/etc/localtime")
    if localtime.exists():
        (folder / "localtime").touch()
    folder.chmod(0o755)
    return folder


# Runs first, as the launched process itself (then exec'd into bubblewrap): joins the kernel's
# cgroups and hands it its connection file. A shell, not a `preexec_fn`: that would make every
# launch fork the whole server (about 5-20 ms) where a spawn costs a fraction of one.
_JOIN = (
    'for f in $PMCP_JOIN; do echo $$ > "$f" || exit 126; done; '
    '[ -z "$PMCP_OWN" ] || chown "$PMCP_UID:$PMCP_UID" "$PMCP_OWN" || exit 126; exec "$@"'
)


@dataclass(frozen=True)
class SandboxLaunch:
    """One kernel's sandboxed launch: the argv, the variables the launching process needs (not
    the kernel: bubblewrap clears them), and the file descriptors it must inherit (the caller
    closes them once it started)."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()

    def close(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)


class Sandbox:
    """Builds sandboxed kernel launches for one server, following its `SandboxPlan`."""

    def __init__(
        self,
        plan: SandboxPlan,
        etc: Path,
        *,
        network: str,
        tmp_mb: int,
        proxy_socket: Path | None = None,
        fonts: FontCache | None = None,
    ) -> None:
        assert plan.bwrap is not None
        self._fonts = fonts
        self.plan = plan
        self._bwrap = plan.bwrap
        self._etc = etc
        self._network = network
        self._tmp_bytes = tmp_mb * 1024 * 1024
        # with --kernel-network allowlist: the egress proxy's socket, the only way out
        self._proxy = proxy_socket if network == "allowlist" else None
        program = filter_program()
        self._seccomp: Path | None = None
        if program is not None:
            self._seccomp = etc.parent / "seccomp.bpf"
            self._seccomp.write_bytes(program)

    def prepare(self, session_dir: Path) -> None:
        """The kernel's own folder (connection file, ipc sockets): only it and the server."""
        session_dir.mkdir(mode=0o700, exist_ok=True)
        if self.plan.as_root:
            os.chown(session_dir, SANDBOX_UID, SANDBOX_UID)

    def seal(self, session_dir: Path, connection_file: Path) -> None:
        """Once the kernel has made its sockets: take its folder and connection file back, so it
        cannot store anything on the host's disk there (as root; a user-namespace kernel owns
        them as the server's own uid, which no chown can change)."""
        if not self.plan.as_root:
            return
        for path in (session_dir, connection_file):
            os.chown(path, 0, 0)
        session_dir.chmod(0o755)

    def launch(
        self,
        kernel_argv: list[str],
        *,
        python: str,
        session_dir: Path | None,
        connection_file: Path | None,
        workspace: Path,
        cwd: Path,
        env: dict[str, str],
        read_only: Iterable[Path] = (),
        groups: LimitGroup | None = None,
        extra_cgroups: Iterable[Path] = (),
    ) -> SandboxLaunch:
        roots = [*python_roots(python), *(Path(p).resolve() for p in read_only)]
        argv = [self._bwrap, *self._namespaces(), *self._system(), *self._tmp()]
        if self._fonts is not None:
            self._fonts.start()
            font_args, font_env = self._fonts.sandbox_args(python)
            argv += font_args
            env = {**font_env, **env}
        rw = [workspace] + ([session_dir] if session_dir else [])
        if self._proxy is not None:
            rw.append(self._proxy.parent)  # root's folder: the kernel may connect, not replace
            env = {**env, PROXY_SOCKET_ENV: str(self._proxy)}
        argv += _binds(ro=roots, rw=rw)
        argv += ["--chdir", str(cwd), *self._env(python, env)]
        seccomp, fds = self._seccomp_args()
        argv += seccomp
        argv += ["--", *self._drop(), *kernel_argv]
        joins = [*(groups.procs_files() if groups is not None else [])]
        joins += [Path(p) / "cgroup.procs" for p in extra_cgroups]
        own = connection_file if self.plan.as_root and connection_file is not None else None
        launch_env = {
            "PMCP_JOIN": " ".join(str(j) for j in joins),
            "PMCP_OWN": str(own) if own is not None else "",
            "PMCP_UID": str(SANDBOX_UID),
        }
        return SandboxLaunch(["/bin/sh", "-c", _JOIN, "sh", *argv], launch_env, fds)

    def launch_installer(
        self,
        installer_argv: list[str],
        *,
        python: str,
        relay: Path,
        writable: Iterable[Path],
        read_only: Iterable[Path] = (),
        env: dict[str, str],
    ) -> SandboxLaunch:
        """The package installer's launch: the system and the interpreter read-only, only
        `writable` (the target environment, the installer's cache) writable, the network only
        through the egress proxy (`relay` is kernel_ext/relay.py, which runs the installer behind
        it). It keeps the server's uid, so what it installs belongs to whoever owns the
        environment, but as root it has no capabilities: it cannot write what it does not own."""
        assert self._proxy is not None, "an installer sandbox needs the egress proxy"
        roots = [*python_roots(python), *(Path(p).resolve() for p in read_only)]
        argv = [self._bwrap, *self._namespaces(installer=True), *self._system(), *self._tmp()]
        argv += _binds(ro=roots, rw=[*writable, self._proxy.parent])
        env = {**env, PROXY_SOCKET_ENV: str(self._proxy)}
        argv += ["--chdir", "/tmp", *self._env(python, env)]
        seccomp, fds = self._seccomp_args()
        argv += seccomp
        argv += ["--", python, "-I", str(relay), "--", *installer_argv]
        return SandboxLaunch(argv, {}, fds)

    def _seccomp_args(self) -> tuple[list[str], tuple[int, ...]]:
        """`--seccomp FD` and the descriptor of the filter program (the launch closes it)."""
        if self._seccomp is None:
            return [], ()
        fd = os.open(self._seccomp, os.O_RDONLY)
        return ["--seccomp", str(fd)], (fd,)

    def _namespaces(self, *, installer: bool = False) -> list[str]:
        args = ["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", "sandbox"]
        if self._network != "full":
            args.append("--unshare-net")
        if not self.plan.as_root:
            args += ["--unshare-user", "--disable-userns"]
            if not installer:
                args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        if installer:
            args += ["--cap-drop", "ALL"]
        return args

    def _system(self) -> list[str]:
        args = ["--ro-bind", "/usr", "/usr"]
        for name in _SYSTEM_DIRS:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                args += ["--ro-bind", name, name]
        args += ["--ro-bind", str(self._etc), "/etc"]
        for name in (*_HOST_ETC, "localtime"):
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        return [*args, "--proc", "/proc", "--dev", "/dev"]

    def _tmp(self) -> list[str]:
        size = str(self._tmp_bytes)
        out = []
        for target in ("/tmp", "/dev/shm"):
            out += ["--perms", "1777", "--size", size, "--tmpfs", target]
        return out

    def _env(self, python: str, env: dict[str, str]) -> list[str]:
        bin_dir = str(Path(python).parent)
        kept = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIXES)}
        values = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "JPY_PARENT_PID": "1",  # ipykernel's parent poller: the server is not in the pid ns
            **kept,
            **env,
        }
        out = ["--clearenv"]
        for key, value in values.items():
            out += ["--setenv", key, value]
        return out

    def _drop(self) -> list[str]:
        if not self.plan.as_root:
            return ["prlimit", "--core=0"]
        uid = str(SANDBOX_UID)
        return [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            "prlimit",
            "--core=0",
        ]


def _binds(ro: Iterable[Path], rw: Iterable[Path]) -> list[str]:
    """Bind mounts at their own paths, parents first, with every missing parent made 0755 (bwrap
    would make it 0700, which the kernel's uid could not cross)."""
    mounts = dict.fromkeys(ro, "--ro-bind") | dict.fromkeys(rw, "--bind")
    bound: list[Path] = []
    made: set[Path] = {Path("/"), Path("/tmp"), Path("/usr"), Path("/etc"), Path("/dev")}
    args: list[str] = []
    for path in sorted(mounts, key=lambda p: (len(p.parts), str(p))):
        if any(_under(path, b) for b in bound) and mounts[path] == "--ro-bind":
            continue  # already visible through a bind above it
        for parent in reversed(path.parents):
            if parent in made or any(_under(parent, b) for b in bound):
                continue
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(parent)
        args += [mounts[path], str(path), str(path)]
        bound.append(path)
        made.add(path)
    return args
