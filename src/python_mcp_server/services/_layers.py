"""Layers on disk: one shared, read-only folder of packages and its manifest, placed once built
and read back by any server sharing `--env-dir`; and the small file helpers of the store.

    layers/<hash>/site            the packages (on sys.path)
    layers/<hash>/manifest.json   requirements, resolved versions, disk use; its mtime: last use
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from python_mcp_server.errors import PackageError
from python_mcp_server.services._envbuild import own_bytes, resolved
from python_mcp_server.services._pythons import Interpreter

LayerKind = Literal["packages", "runtime"]
MANIFEST = "manifest.json"


@dataclass
class Layer:
    """One shared, read-only layer of packages."""

    key: str
    kind: LayerKind
    site: Path
    python: str
    requirements: list[str]
    resolved: dict[str, str]
    own_bytes: int
    users: int = 0
    last_used: float = field(default_factory=time.time)

    @property
    def folder(self) -> Path:
        return self.site.parent


def place(
    root: Path,
    staging: Path,
    key: str,
    kind: LayerKind,
    interpreter: Interpreter,
    requirements: list[str],
    runtime: Layer | None,
) -> Layer:
    """Write the manifest and move the built layer into place (once; a layer another server
    placed meanwhile wins)."""
    manifest = {
        "key": key,
        "kind": kind,
        "python": interpreter.version,
        "requirements": requirements,
        "runtime": runtime.key if runtime is not None else None,
        "resolved": resolved([staging / "site"]),
        "own_bytes": own_bytes(staging),
        "created": time.time(),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    staging.chmod(0o755)
    final = root / "layers" / key
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        try:
            staging.rename(final)
        except OSError:  # another file system: copy (no hard links), then swap in
            part = final.with_name(f"{key}.part-{secrets.token_hex(4)}")
            shutil.copytree(staging, part, symlinks=True)
            with contextlib.suppress(OSError):
                part.rename(final)
            shutil.rmtree(part, ignore_errors=True)
    layer = load(final)
    if layer is None:
        raise PackageError(f"The environment layer {final} could not be read back.")
    return layer


def load(folder: Path) -> Layer | None:
    """A layer already on disk (built earlier, or by another server), or None."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        return Layer(
            key=data["key"],
            kind="runtime" if data["kind"] == "runtime" else "packages",
            site=folder / "site",
            python=data["python"],
            requirements=list(data["requirements"]),
            resolved=dict(data["resolved"]),
            own_bytes=int(data["own_bytes"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def owner_alive(name: str) -> bool:
    """Whether the server process named by a `<pid>-...` folder still runs."""
    try:
        pid = int(name.split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
