"""`PackageService`: install packages into a session kernel's interpreter, and list them.

The installer is `uv pip install --python <kernel python>` (or `<kernel python> -m pip install`
when uv is missing), run from an argv list in its own process group so a timeout can kill it
whole. Versions before and after come from the kernel itself (importlib.metadata, silently), so
the result says exactly what changed, and whether an upgraded module was already imported.
Into the server's own environment (a base session's), the packages the server runs on are held
at their versions (`_envbuild.server_pins`, as installer constraints): an install that needs
another version of one fails, naming it.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Literal

import anyio
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError, PackageError
from python_mcp_server.services._envbuild import server_pins
from python_mcp_server.services._installer import (
    Installer,
    InstallerRun,
    InstallSandbox,
    find_installer,
    run_installer,
)
from python_mcp_server.services._probe import evaluate, locked
from python_mcp_server.services._requirements import Requested, parse_requirements
from python_mcp_server.services.environments import Progress
from python_mcp_server.services.session import KernelSession
from python_mcp_server.services.sessions import SessionManager

MAX_INSTALL_TIMEOUT_S = 3600.0
_SLACK_S = 30.0  # beyond the install's own limit, for the kernel to report it
_THERE = (
    " They went into the environment of the session's kernel on the gateway: what else shares "
    "it is the gateway's to say (with Kernel Gateway on one host, every kernel of that "
    "kernelspec; with a pod per kernel, this kernel only, until it is restarted)."
)
OUTPUT_TAIL_CHARS = 3000

Outcome = Literal["installed", "upgraded", "downgraded", "already_satisfied", "failed"]


class PackageOutcome(BaseModel):
    requirement: str = Field(description="The entry as it was passed.")
    name: str | None = Field(default=None, description="Normalized distribution name.")
    status: Outcome
    version: str | None = Field(default=None, description="The version installed now.")
    previous_version: str | None = None
    reason: str | None = Field(default=None, description="Why it failed, in plain words.")


class InstallResult(BaseModel):
    session_id: str
    status: Literal["ok", "failed", "timeout"]
    packages: list[PackageOutcome]
    other_changes: list[str] = Field(
        default_factory=list, description="Dependencies that were added, changed or removed."
    )
    restart_needed: bool = Field(
        description="True when an upgraded module was already imported in the kernel: call "
        "restart_kernel to use the new version (variables are lost)."
    )
    installer: Literal["uv", "pip"]
    sandboxed: bool = Field(
        description="True when the installer ran in a sandbox of its own (network only to the "
        "package index, writing only the kernel's environment)."
    )
    source_builds: bool = Field(
        description="Whether packages could be built from source (allow_source_builds); "
        "otherwise only wheels were used."
    )
    refused_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts the sandboxed installer tried to reach that are not a package index.",
    )
    environment: Literal["own", "base"] = Field(
        description="'own': installed into the session's own environment, which no other "
        "session sees; 'base': into the server's environment, shared by every session on it."
    )
    command: str
    duration_ms: float
    output_tail: str = Field(description="The end of the installer's output.")
    message: str


class InstalledPackage(BaseModel):
    name: str
    version: str


class PackageList(BaseModel):
    session_id: str
    python: str = Field(description="The kernel's interpreter.")
    packages: list[InstalledPackage]
    total: int


class PackageService:
    def __init__(self, config: ServerConfig, sessions: SessionManager) -> None:
        self._config = config
        self._sessions = sessions
        plan = sessions.sandbox.plan
        self._sandbox = InstallSandbox(plan, config) if plan.enabled else None

    async def installed(self, session_id: str) -> PackageList:
        """Every distribution the session's kernel can import, as name and version."""
        session = await self._sessions.acquire(session_id)
        async with locked(session):
            data: dict[str, list[str]] = await evaluate(session, "versions")
        packages = sorted(
            (InstalledPackage(name=n, version=v) for n, v in data.values()),
            key=lambda p: p.name.lower(),
        )
        return PackageList(
            session_id=session_id,
            python=session.python,
            packages=packages,
            total=len(packages),
        )

    async def install(
        self,
        session_id: str,
        packages: list[str],
        upgrade: bool = False,
        timeout_s: float | None = None,
        allow_source_builds: bool = False,
        progress: Progress | None = None,
    ) -> InstallResult:
        """Install `packages` into the session kernel's interpreter and make them importable;
        `progress` hears when the installer starts and ends."""
        timeout = self._config.install_timeout_s if timeout_s is None else timeout_s
        if not 0 < timeout <= MAX_INSTALL_TIMEOUT_S:
            raise InvalidArgumentError(
                f"timeout_s must be above 0 and at most {MAX_INSTALL_TIMEOUT_S:.0f}; "
                f"got {timeout_s}."
            )
        remote = self._sessions.directory is not None  # kernels on a gateway
        requested = parse_requirements(
            packages,
            self._config.workspace_root,
            self._config.allow_local_package_paths and not remote,
        )
        session = await self._sessions.acquire(session_id)
        python = session.python
        if remote:
            return await self._install_there(
                session, requested, upgrade, timeout, allow_source_builds, progress
            )
        installer, argv = find_installer(python, source_builds=allow_source_builds)
        # the server's own packages, held at their versions (read in a thread: ~0.1 s of metadata)
        mine = session.environment is None and _is_servers(python)
        held = await anyio.to_thread.run_sync(server_pins) if mine else {}
        if upgrade:
            names = [r.name for r in requested if r.name]
            argv += (
                [a for n in names for a in ("--upgrade-package", n)]
                if installer == "uv"
                else ["--upgrade"]
            )
        argv += [r.argument for r in requested]
        started = time.perf_counter()
        where = "its own environment" if session.environment is not None else "the base environment"
        async with locked(session, wait_s=timeout):
            before = await evaluate(session, "versions")
            if progress is not None:
                wanted = ", ".join(r.raw for r in requested)
                await progress(f"Installing {wanted} into {where} of session {session_id!r}")
            run = await run_installer(
                argv,
                timeout,
                self._config.workspace_root,
                python,
                self._sandbox,
                constraints=[f"{name}=={version}" for name, version in sorted(held.items())],
            )
            if progress is not None:
                await progress(f"The installer finished (exit code {run.returncode})")
            after = await evaluate(session, "refresh", {k: v[1] for k, v in before.items()})
        if held:
            argv += ["--constraint", "<server-packages>"]  # the file is gone with the run
        result = self._result(
            session,
            requested,
            (before, after),
            run,
            (installer, argv, timeout),
            allow_source_builds,
            started,
        )
        return _holding(result, held, run.output) if held else result

    async def _install_there(
        self,
        session: KernelSession,
        requested: list[Requested],
        upgrade: bool,
        limit_s: float,
        source_builds: bool,
        progress: Progress | None,
    ) -> InstallResult:
        """Install into the kernel's own interpreter on the gateway, by the kernel itself (its
        environment is out of this server's reach); the gateway's isolation applies."""
        started = time.perf_counter()
        async with locked(session, wait_s=limit_s):
            before = await evaluate(session, "versions")
            if progress is not None:
                wanted = ", ".join(r.raw for r in requested)
                await progress(f"Installing {wanted} in session {session.session_id!r}'s kernel")
            args = {
                "requirements": [r.argument for r in requested],
                "upgrade": [r.name for r in requested if r.name] if upgrade else [],
                "source_builds": source_builds,
                "timeout": limit_s,
            }
            done = await evaluate(session, "install", args, timeout_s=limit_s + _SLACK_S)
            if progress is not None:
                await progress(f"The installer finished (exit code {done['returncode']})")
            after = await evaluate(session, "refresh", {k: v[1] for k, v in before.items()})
        run = InstallerRun(done["returncode"], str(done["output"]))
        installer: Installer = "uv" if done["installer"] == "uv" else "pip"
        how = (installer, [str(a) for a in done["argv"]], limit_s)
        return self._result(session, requested, (before, after), run, how, source_builds, started)

    def _result(
        self,
        session: KernelSession,
        requested: list[Requested],
        versions: tuple[dict[str, list[str]], dict[str, Any]],
        run: InstallerRun,
        how: tuple[Installer, list[str], float],
        allow_source_builds: bool,
        started: float,
    ) -> InstallResult:
        """The result: what changed between the `versions` before and after the `run`."""
        (before, after), (installer, argv, timeout) = versions, how
        session_id, python = session.session_id, session.python
        remote = self._sessions.directory is not None
        returncode, output = run.returncode, run.output
        own = session.environment is not None
        if installer == "pip" and "No module named pip" in output:
            raise PackageError(
                f"Neither uv nor pip is available for {python}. Install uv on the server's "
                "PATH, or pip into that interpreter."
            )
        status: Literal["ok", "failed", "timeout"] = (
            "timeout" if returncode is None else "ok" if returncode == 0 else "failed"
        )
        old = {k: v[1] for k, v in before.items()}
        new = {k: v[1] for k, v in after["versions"].items()}
        outcomes = [_outcome(r, old, new, status, output) for r in requested]
        named = {o.name for o in outcomes}
        restart: dict[str, list[str]] = after["restart"]
        return InstallResult(
            session_id=session_id,
            status=status,
            packages=outcomes,
            other_changes=_changes(old, new, named),
            restart_needed=bool(restart),
            installer=installer,
            sandboxed=self._sandbox is not None and not remote,
            source_builds=allow_source_builds,
            refused_hosts=run.refused,
            environment="own" if own else "base",
            command=shlex.join(argv),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            output_tail=_tail(output),
            message=_message(status, outcomes, restart, old, new, timeout, run.refused)
            + (_THERE if remote and status == "ok" else _where(own, status)),
        )


def _is_servers(python: str) -> bool:
    """Whether `python` is the interpreter of the server's own environment."""
    path = Path(python)
    return path == Path(sys.executable) or path.parent.parent == Path(sys.prefix)


def _holding(result: InstallResult, held: dict[str, str], output: str) -> InstallResult:
    """`result` of an install into the server's own environment, which holds the packages the
    server runs on at their versions: an install that failed because it would have changed one
    says so, and how to have another version."""
    if result.status != "failed":
        return result
    clashes = {
        name: version
        for name, version in held.items()
        if re.search(
            rf"(?<![\w.-]){re.escape(name)}=={re.escape(version)}(?![\w.])", output, re.IGNORECASE
        )
    }
    if not clashes:
        return result
    wanted = [p.requirement for p in result.packages]
    fix = (
        "For another version, give a session an environment of its own: "
        f"create_session(dependencies={wanted!r})."
    )
    packages = [
        p.model_copy(
            update={
                "reason": f"{p.name} is one of the packages the server itself runs on, kept at "
                f"{clashes[p.name]} in the base environment (the server's own). {fix}"
            }
        )
        if p.status == "failed" and p.name in clashes
        else p
        for p in result.packages
    ]
    needed = ", ".join(f"{name} (kept at {version})" for name, version in sorted(clashes.items()))
    message = (
        f"{result.message} The base environment is the server's own, so the packages the server "
        f"runs on keep their versions there; this install needed another version of {needed}. "
        + fix
    )
    return result.model_copy(update={"packages": packages, "message": message.strip()})


def _where(own: bool, status: str) -> str:
    if status != "ok":
        return ""
    if own:
        return " They went into this session's own environment; other sessions do not see them."
    return (
        " They went into the server's base environment, shared by every session without an "
        "environment of its own (create_session with dependencies gives a session its own)."
    )


def _outcome(
    req: Requested, old: dict[str, str], new: dict[str, str], status: str, output: str
) -> PackageOutcome:
    name = req.name
    was, now = (old.get(name), new.get(name)) if name else (None, None)
    base = PackageOutcome(requirement=req.raw, name=name, status="failed", version=now)
    if now is not None and was is None:
        return base.model_copy(update={"status": "installed"})
    if now is not None and was is not None and now != was:
        kind = "upgraded" if _newer(now, was) else "downgraded"
        return base.model_copy(update={"status": kind, "previous_version": was})
    if status == "ok" and now is not None:
        return base.model_copy(update={"status": "already_satisfied"})
    if status == "ok" and name is None:
        return base.model_copy(update={"status": "installed"})
    if status == "ok":
        reason = (
            "The installer reported success, but the kernel's interpreter cannot find this "
            "distribution; it may have been installed for another Python."
        )
        return base.model_copy(update={"reason": reason})
    return base.model_copy(update={"reason": _reason(req, status, output), "version": was})


def _newer(a: str, b: str) -> bool:
    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return True


_NOT_FOUND = ("not found in the package registry", "No matching distribution found")
# uv refusing a source build under --only-binary :all: (an index's package, a local sdist)
_NO_WHEEL = ("has no usable wheels", "Building source distributions is disabled")


def _reason(req: Requested, status: str, output: str) -> str:
    if status == "timeout":
        return "The installer timed out before this package was installed."
    raw = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [_clean(line) for line in raw if _ERROR_LINE.match(line)]
    lines = [_clean(line) for line in raw]
    name = req.name or ""
    pattern = re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w.-]*\w)", re.IGNORECASE)
    mine = [line for line in lines if name and pattern.search(line.replace("_", "-"))]
    no_wheel = [line for line in lines if any(marker in line for marker in _NO_WHEEL)]
    if no_wheel and (not name or any(pattern.search(x.replace("_", "-")) for x in no_wheel)):
        return (
            f"Only wheels are installed by default, and none fits this Python and platform: "
            f"{no_wheel[0][:300]} Building from source runs the package's own build code: pass "
            "allow_source_builds=true to allow it (the build runs in the installer's sandbox "
            "when kernels are sandboxed), or pick a version that ships wheels."
        )
    if any(marker in line for line in mine for marker in _NOT_FOUND):
        return (
            f"No package named {name!r} was found in the package index. Check the spelling; the "
            "package name can differ from the import name (scikit-learn for sklearn)."
        )
    if mine:
        return mine[-1][:500]
    last = (errors or lines or ["no output"])[-1][:500]
    return f"Not installed, because the install as a whole failed: {last}"


_ERROR_LINE = re.compile(r"^(?:error|cause|×|╰─▶)", re.IGNORECASE)
_PREFIX = re.compile(r"^(?:(?:error|cause)\s*:|×|╰─▶)\s*", re.IGNORECASE)


def _clean(line: str) -> str:
    return _PREFIX.sub("", line)


def _changes(old: dict[str, str], new: dict[str, str], named: set[str | None]) -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key in named or old.get(key) == new.get(key):
            continue
        if key not in old:
            changes.append(f"added {key}=={new[key]}")
        elif key not in new:
            changes.append(f"removed {key}=={old[key]}")
        else:
            changes.append(f"changed {key} {old[key]} -> {new[key]}")
    return changes


def _message(
    status: str,
    outcomes: list[PackageOutcome],
    restart: dict[str, list[str]],
    old: dict[str, str],
    new: dict[str, str],
    timeout: float,
    refused: list[str],
) -> str:
    parts = []
    if status == "timeout":
        parts.append(
            f"The installer ran longer than {timeout:g} s and was stopped (its whole process "
            "group was killed). Try again with a larger timeout_s or fewer packages."
        )
    failed = [o for o in outcomes if o.status == "failed"]
    if status == "ok" and not failed:
        parts.append("All packages are installed and importable in the running kernel.")
    elif failed and status != "timeout":
        parts.append(f"{len(failed)} of {len(outcomes)} packages were not installed.")
    for key, modules in sorted(restart.items()):
        parts.append(
            f"Restart needed: {key} changed from {old.get(key)} to {new.get(key)} while "
            f"{', '.join(modules)} was already imported, so the kernel still runs the old code. "
            "Call restart_kernel (variables are lost) to use the new version."
        )
    if refused:
        parts.append(
            "The installer's sandbox refused connections to " + ", ".join(refused[:5]) + ": "
            "installs reach only the package index (set UV_INDEX_URL or UV_EXTRA_INDEX_URL in "
            "the server's environment, or --install-allow-host, for another one)."
        )
    return " ".join(parts)


def _tail(output: str) -> str:
    output = output.strip()
    if len(output) <= OUTPUT_TAIL_CHARS:
        return output
    return "..." + output[-OUTPUT_TAIL_CHARS:]
