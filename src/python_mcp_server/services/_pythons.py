"""The Python interpreters this host has, for sessions that ask for another one (`python="3.12"`).

Found, once, in the places interpreters live: the kernels' own interpreter, pyenv's versions
folder (`$PYENV_ROOT`, else `~/.pyenv`), uv's managed Pythons, and `python3.X` executables on
PATH (shims, which are scripts, are skipped: the real interpreter behind one is found where it
lives). Each candidate is asked for its version; only CPython 3.9 and later is offered (what the
kernel runtime supports). A request names a version (`3.12` or `3.12.1`), never a path.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from python_mcp_server.errors import InvalidArgumentError

_ASK = (
    "import json,platform,sys;print(json.dumps([platform.python_version(),"
    "sys.implementation.name,getattr(sys,'_base_executable',sys.executable),"
    "sys.version,platform.machine()]))"
)
_VERSION = re.compile(r"^3\.\d{1,2}(?:\.\d{1,3})?$")
_MINIMUM = (3, 9)


@dataclass(frozen=True)
class Interpreter:
    """One interpreter: its version (`3.12.1`), the executable a venv is made from, and a key
    that tells builds apart (two interpreters with the same key make the same environment)."""

    version: str
    executable: str
    key: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def ask(python: str) -> Interpreter | None:
    """Run `python` once and describe it; None when it cannot run or is not CPython 3.9+."""
    try:
        out = subprocess.run(
            [python, "-I", "-c", _ASK],
            capture_output=True,
            timeout=20,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
        version, implementation, base, full, machine = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if implementation != "cpython" or _tuple(version) < _MINIMUM:
        return None
    base_path = Path(base)
    executable = str(base_path if base_path.is_file() else Path(python))
    return Interpreter(version, executable, f"{full} {machine}")


def kernel_interpreter(kernel_python: str) -> Interpreter | None:
    """The kernels' own interpreter, described without running it when it is this server's
    (what `ask` would answer), so a server start need not wait for a process."""
    if kernel_python != sys.executable:
        return ask(kernel_python)
    if sys.implementation.name != "cpython" or sys.version_info[:2] < _MINIMUM:
        return None
    base = Path(getattr(sys, "_base_executable", sys.executable))
    executable = str(base if base.is_file() else Path(kernel_python))
    return Interpreter(platform.python_version(), executable, f"{sys.version} {platform.machine()}")


def _tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return (0,)


def _candidates(kernel_python: str) -> list[Path]:
    found = [Path(kernel_python)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    uv_pythons = Path(
        os.environ.get("UV_PYTHON_INSTALL_DIR", Path.home() / ".local/share/uv/python")
    )
    for root in (pyenv, uv_pythons):
        if root.is_dir():
            found += sorted(root.glob("*/bin/python3"))
    for minor in range(_MINIMUM[1], 20):
        path = shutil.which(f"python3.{minor}")
        if path is not None and is_binary(path):
            found.append(Path(path))
    return found


def is_binary(path: str) -> bool:
    """Whether `path` is an executable file itself, not a script (a pyenv or asdf shim)."""
    try:
        with open(path, "rb") as f:
            return f.read(2) != b"#!"
    except OSError:
        return False


@cache
def interpreters(kernel_python: str) -> tuple[Interpreter, ...]:
    """Every usable interpreter, the kernels' own first, one per version (asked once)."""
    seen: dict[str, Interpreter] = {}
    for path in _candidates(kernel_python):
        if not path.exists():
            continue
        found = kernel_interpreter(str(path)) if str(path) == kernel_python else ask(str(path))
        if found is not None and found.version not in seen:
            seen[found.version] = found
    return tuple(seen.values())


def choose(request: str | None, kernel_python: str) -> Interpreter:
    """The interpreter a session asked for (`None`: the kernels' own). Raises with the list of
    what this host has when there is no such Python."""
    known = interpreters(kernel_python)
    if request is None or not request.strip():
        if not known:
            raise InvalidArgumentError(f"The kernels' interpreter {kernel_python} cannot run.")
        return known[0]
    wanted = request.strip().removeprefix("python").removeprefix("cpython-")
    if not _VERSION.fullmatch(wanted):
        raise InvalidArgumentError(
            f"python={request!r} is not a Python version: pass one such as '3.12' or '3.12.1' "
            f"(this host has {_listing(known)})."
        )
    for interpreter in known:
        if interpreter.version == wanted or interpreter.minor == wanted:
            return interpreter
    raise InvalidArgumentError(
        f"Python {wanted} is not installed on this server; it has {_listing(known)}. Pick one "
        "of those, or omit python for the server's own."
    )


def _listing(known: tuple[Interpreter, ...]) -> str:
    return ", ".join(i.version for i in known) or "no usable interpreter"
