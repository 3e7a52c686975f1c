"""The distributions the kernel's interpreter can import, before and after an install."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import re
import site
import sys
from collections.abc import Mapping


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
