"""The distributions the kernel's interpreter can import, before and after an install."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import re
import site
import sys
from collections.abc import Mapping
from typing import Any


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def versions() -> dict[str, list[str]]:
    """Normalized name -> [name as published, version], first on the path wins."""
    found: dict[str, list[str]] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(_key(name), [name, dist.version])
    return found


def top_level_names(dist: md.Distribution) -> set[str]:
    """The import names a distribution provides (`top_level.txt`, else its file list)."""
    text = dist.read_text("top_level.txt")
    if text:
        return {t.strip() for t in text.splitlines() if t.strip()}
    names = set()
    for f in dist.files or []:
        first = f.parts[0] if f.parts else ""
        if not first or first in ("..", "__pycache__"):
            continue
        if first.endswith((".dist-info", ".egg-info", ".data")):
            continue
        names.add(first.split(".")[0] if len(f.parts) == 1 else first)
    return names


def _see_new_site_dirs() -> None:
    importlib.invalidate_caches()
    dirs = list(getattr(site, "getsitepackages", list)())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    for d in dirs:
        if os.path.isdir(d) and d not in sys.path:
            site.addsitedir(d)


def refresh(before: Mapping[str, str]) -> dict[str, dict[str, list[str]]]:
    """Make newly installed packages importable; list versions, and what needs a restart.

    `before` maps normalized names to the versions before the install. A distribution whose
    version changed while one of its modules was imported needs a kernel restart.
    """
    _see_new_site_dirs()
    found: dict[str, list[str]] = {}
    restart: dict[str, list[str]] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = _key(name)
        if key in found:
            continue
        found[key] = [name, dist.version]
        old = before.get(key)
        if old is not None and old != dist.version:
            imported = sorted(t for t in top_level_names(dist) if t in sys.modules)
            if imported:
                restart[key] = imported
    return {"versions": found, "restart": restart}


_OUTPUT_TAIL = 200_000


def install(args: Mapping[str, Any]) -> dict[str, Any]:
    """Install into this kernel's own interpreter (a kernel on a gateway, whose environment the
    server cannot reach): uv when the kernel's PATH has it, else pip; wheels only unless asked.
    `args`: requirements, upgrade (names), source_builds, timeout (seconds). The installer is
    killed with everything it started when the time is up (returncode None)."""
    import shutil
    import signal
    import subprocess

    requirements = [str(r) for r in args.get("requirements") or []]
    upgrade = [str(n) for n in args.get("upgrade") or []]
    source_builds = bool(args.get("source_builds"))
    uv = shutil.which("uv")
    if uv is not None:
        argv = [uv, "pip", "install", "--python", sys.executable]
        argv += [] if source_builds else ["--only-binary", ":all:"]
        argv += [a for name in upgrade for a in ("--upgrade-package", name)]
    else:
        argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        argv += [] if source_builds else ["--only-binary=:all:"]
        argv += ["--upgrade"] if upgrade else []
    argv += requirements
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=float(args.get("timeout") or 300))
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    text = output.decode("utf-8", "replace")[-_OUTPUT_TAIL:]
    return {"returncode": code, "output": text, "installer": "uv" if uv else "pip", "argv": argv}
