"""Where a sandboxed package install may go: the index hosts it may reach, the local folders it
may read, and the one folder it may write.

The installer's network is the egress proxy's allow-list: the hosts of the package indexes the
server's environment configures for uv and pip (`UV_DEFAULT_INDEX`, `UV_INDEX_URL`, `UV_INDEX`,
`UV_EXTRA_INDEX_URL`, `PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`), or PyPI and its file host when
none is set, plus `--install-allow-host` entries. Local indexes and find-links folders (`file://`
URLs, paths) are bound read-only instead. Configuration files are not read inside the sandbox
(it has its own `/etc` and home), so an index must come from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")
# the variables that name a default index (replacing PyPI) and the ones that add indexes
DEFAULT_INDEX_VARS = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
EXTRA_INDEX_VARS = ("UV_INDEX", "UV_EXTRA_INDEX_URL", "PIP_EXTRA_INDEX_URL")
FIND_LINKS_VARS = ("UV_FIND_LINKS", "PIP_FIND_LINKS")
_SEPARATORS = re.compile(r"[\s,]+")
# folders an interpreter's prefix must not be: installing there would write the system's own
_SYSTEM_PREFIXES = (Path("/"), Path("/usr"), Path("/usr/local"), Path("/opt"))


@dataclass(frozen=True)
class IndexAccess:
    """What an install may reach: hosts (through the proxy) and local folders (read-only)."""

    hosts: tuple[str, ...]
    folders: tuple[Path, ...]


def _entries(value: str) -> list[str]:
    """The URLs or paths in one variable: separated by spaces or commas; `name=url` entries of
    `UV_INDEX` give their URL."""
    out = []
    for item in _SEPARATORS.split(value.strip()):
        if not item:
            continue
        name, sep, rest = item.partition("=")
        out.append(rest if sep and "://" in rest and "://" not in name else item)
    return out


def _host(url: str) -> str | None:
    """`host` or `host:port` of an http(s) URL, without credentials; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        return None
    return f"{host}:{port}" if port else host


def _folder(entry: str) -> Path | None:
    """The local folder a `file://` URL or an absolute path names, if it exists."""
    if entry.startswith("file://"):
        path = Path(unquote(urlsplit(entry).path))
    elif entry.startswith("/"):
        path = Path(entry)
    else:
        return None
    return path if path.exists() else None


def index_access(environ: Mapping[str, str], extra_hosts: tuple[str, ...] = ()) -> IndexAccess:
    """The hosts and local folders the installer needs, from the server's environment."""
    hosts: list[str] = []
    folders: list[Path] = []
    defaults = [e for var in DEFAULT_INDEX_VARS for e in _entries(environ.get(var, ""))]
    extras = [
        e for var in (*EXTRA_INDEX_VARS, *FIND_LINKS_VARS) for e in _entries(environ.get(var, ""))
    ]
    if not any(_host(e) or _folder(e) for e in defaults):
        hosts += PYPI_HOSTS
    for entry in (*defaults, *extras):
        host, folder = _host(entry), _folder(entry)
        if host is not None:
            hosts.append(host)
        elif folder is not None:
            folders.append(folder)
    hosts += extra_hosts
    return IndexAccess(tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(folders)))


def install_target(prefix: Path, base_prefix: Path) -> Path | None:
    """The one folder an install into this interpreter writes: its environment's prefix (a venv,
    or an interpreter of its own such as pyenv's), or None for a system interpreter, whose
    packages belong to the system's package manager."""
    if prefix != base_prefix:
        return prefix
    if prefix in _SYSTEM_PREFIXES or prefix.parent == Path("/"):
        return None
    return prefix
