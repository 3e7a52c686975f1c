"""What this host lets us do to contain a kernel, decided once at startup.

`plan_sandbox(config)` probes for bubblewrap (a real run, not just the binary), for root or
unprivileged user namespaces, for `setpriv` and `prlimit`, and for cgroup controllers, and returns a
`SandboxPlan`: whether kernels are sandboxed, and each protection with whether it is active and
why (or why not, with the fix). `--sandbox on` refuses to start when a required one is missing;
`auto` uses what there is; `off` uses nothing and says so.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import ConfigError
from python_mcp_server.procs.limits import LimitSupport, probe_support
from python_mcp_server.sandbox.seccomp import filter_program

logger = logging.getLogger(__name__)

SANDBOX_UID = 65534  # "nobody": owns nothing on the host
_PROBE_TIMEOUT_S = 10.0
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap)"


@dataclass(frozen=True)
class Protection:
    """One layer of containment: active or not, and in either case why."""

    name: str
    active: bool
    detail: str
    required: bool = True  # `--sandbox on` refuses to start without it


@dataclass(frozen=True)
class SandboxPlan:
    """How kernels are launched: sandboxed or not, with what."""

    mode: str
    enabled: bool
    bwrap: str | None = None
    as_root: bool = False
    limits: LimitSupport = field(default_factory=LimitSupport)
    protections: tuple[Protection, ...] = ()

    def active(self) -> list[str]:
        return [p.name for p in self.protections if p.active]

    def missing(self) -> list[Protection]:
        return [p for p in self.protections if p.required and not p.active]

    def summary(self) -> str:
        """One log line: each protection, active or not and why."""
        if not self.enabled:
            why = "; ".join(p.detail for p in self.protections if not p.active)
            return (
                f"kernels are NOT sandboxed (--sandbox {self.mode}{': ' + why if why else ''}): "
                "code the agent runs can read and change anything this server's user can"
            )
        parts = [f"{p.name}: {'on' if p.active else 'OFF'} ({p.detail})" for p in self.protections]
        return "kernel sandbox: " + "; ".join(parts)


def _bwrap_works(bwrap: str, as_root: bool) -> str | None:
    """None if bubblewrap can make the namespaces we use here, else why not."""
    argv = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--unshare-ipc"]
    if not as_root:
        argv += ["--unshare-user", "--disable-userns"]
    argv += ["--dev", "/dev", "--proc", "/proc", "true"]
    try:
        done = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
    return None


@cache
def _why_no_bwrap() -> tuple[str | None, str | None]:
    """The bwrap path, or None and why it cannot be used (probed once per process)."""
    if os.name != "posix" or not os.path.isdir("/proc"):
        return None, "kernel sandboxing needs Linux"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, f"bubblewrap is not installed; {INSTALL_HINT}"
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        return None, "setpriv (util-linux) is missing, so the kernel could not drop root"
    problem = _bwrap_works(bwrap, as_root)
    if problem is not None:
        fix = (
            "run the server as root, or allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1 or user.max_user_namespaces > 0)"
        )
        return None, f"bubblewrap cannot create namespaces here ({problem}); {fix}"
    return bwrap, None


@cache
def _limit_support() -> LimitSupport:
    """The host's cgroup controllers (probed once per process: they do not change)."""
    return probe_support()


def _limit_protections(config: ServerConfig, limits: LimitSupport) -> list[Protection]:
    why_not = "no writable cgroup controller (run the server as root, or delegate a cgroup subtree)"
    memory = config.kernel_memory_mb
    out = [
        Protection(
            "memory limit",
            bool(limits.memory and memory),
            f"{memory} MB per session (cgroup)" if memory else "disabled (--kernel-memory-mb 0)",
            required=bool(memory),
        ),
        Protection(
            "process limit",
            bool(limits.pids and config.kernel_max_processes),
            f"{config.kernel_max_processes} processes per session (cgroup)"
            if config.kernel_max_processes
            else "disabled (--kernel-max-processes 0)",
            required=bool(config.kernel_max_processes),
        ),
    ]
    if config.kernel_cpus:
        out.append(
            Protection("cpu quota", bool(limits.cpu), f"{config.kernel_cpus:g} CPUs per session")
        )
    return [p if p.active or not p.required else _missing(p, why_not) for p in out]


def _missing(p: Protection, why: str) -> Protection:
    return Protection(p.name, False, why, p.required)


def _network_protection(config: ServerConfig) -> Protection:
    if config.kernel_network == "full":
        return Protection(
            "network", False, "full network access (--kernel-network full)", required=False
        )
    if config.kernel_network == "allowlist":
        hosts = ", ".join(config.kernel_allow_hosts) or "nothing"
        return Protection("network", True, f"own namespace; only through the proxy to {hosts}")
    return Protection("network", True, "own network namespace, no route out")


def _syscall_protection() -> Protection:
    machine = platform.machine()
    if filter_program(machine) is None:
        return Protection(
            "syscall filter", False, f"no seccomp filter for the {machine} architecture yet"
        )
    return Protection("syscall filter", True, "seccomp: no namespaces, mounts, ptrace, bpf")


def plan_sandbox(config: ServerConfig) -> SandboxPlan:
    """Decide how kernels are launched. Raises ConfigError for `--sandbox on` when a required
    protection is missing, naming each and its fix."""
    if config.sandbox == "off":
        return SandboxPlan(mode="off", enabled=False)
    bwrap, problem = _why_no_bwrap()
    if bwrap is None:
        plan = SandboxPlan(
            mode=config.sandbox,
            enabled=False,
            protections=(Protection("filesystem, processes, network, user", False, str(problem)),),
        )
    else:
        as_root = os.geteuid() == 0
        limits = _limit_support() if as_root else LimitSupport()
        user = "uid 65534, no capabilities, no_new_privs"
        protections = [
            Protection("filesystem", True, "runtime read-only, workspace read-write, own /etc"),
            Protection("processes", True, "own pid namespace; dies with the server"),
            _network_protection(config),
            Protection("user", True, user if as_root else f"{user} (user namespace)"),
            _syscall_protection(),
            Protection("private /tmp", True, f"{config.kernel_tmp_mb} MB tmpfs"),
            *_limit_protections(config, limits),
        ]
        plan = SandboxPlan(config.sandbox, True, bwrap, as_root, limits, tuple(protections))
    if config.sandbox == "on" and plan.missing():
        raise ConfigError(
            "--sandbox on: refusing to start, because "
            + "; ".join(f"{p.name} is not available: {p.detail}" for p in plan.missing())
            + ". Fix that, or use --sandbox auto to run with what this host allows."
        )
    return plan
