"""Which requirement strings `install_dependencies` accepts, and what it passes to the installer.

Only PEP 508 names with optional extras and version specifiers get through. Options, paths,
URLs, environment markers and shell metacharacters are refused before any process starts (the
installer is always run from an argv list, never a shell; the refusal keeps the request honest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from python_mcp_server.errors import PackageError
from python_mcp_server.workspace.paths import resolve_inside

MAX_PACKAGES = 50
MAX_LENGTH = 200
SHELL_CHARACTERS = frozenset(";|&$`\\'\"(){}#\n\r\t\x00")
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2")
_EXAMPLES = (
    "Pass package names with optional extras and version specifiers, for example 'numpy', "
    "'pandas>=2.0' or 'requests[socks]==2.32.3'."
)


@dataclass(frozen=True)
class Requested:
    """One accepted requirement: what the model asked for and what goes on the installer's argv."""

    raw: str
    argument: str
    name: str | None  # canonical distribution name; None for a local folder


def refuse(raw: str, rule: str) -> PackageError:
    return PackageError(f"Requirement {raw!r} is refused: {rule}. {_EXAMPLES}")


def parse_requirements(
    packages: list[str], workspace_root: Path, allow_local_paths: bool = False
) -> list[Requested]:
    """Validate every entry; raise `PackageError` naming the rule the first bad entry breaks."""
    if not packages:
        raise PackageError(f"No packages given. {_EXAMPLES}")
    if len(packages) > MAX_PACKAGES:
        raise PackageError(
            f"{len(packages)} packages given; at most {MAX_PACKAGES} per call. Split the list."
        )
    return [_parse_one(raw, workspace_root, allow_local_paths) for raw in packages]


def _parse_one(raw: str, root: Path, allow_local_paths: bool) -> Requested:
    text = raw.strip()
    if not text:
        raise refuse(raw, "it is empty")
    if len(text) > MAX_LENGTH:
        raise refuse(raw[:40] + "...", f"it is longer than {MAX_LENGTH} characters")
    if text.startswith("-"):
        raise refuse(
            raw,
            "it looks like an installer option, and options such as --index-url or -e "
            "are not accepted",
        )
    bad = sorted({c for c in text if c in SHELL_CHARACTERS})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise refuse(
            raw,
            f"it contains {shown}; shell metacharacters and environment markers are not accepted",
        )
    if "://" in text or "@" in text:
        raise refuse(raw, "URLs and direct references (name @ url) are not accepted")
    if _looks_like_path(text):
        if allow_local_paths:
            return _local(raw, text, root)
        raise refuse(raw, "local paths and archive files are not accepted, only index packages")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise refuse(raw, f"it is not a valid PEP 508 requirement ({first})") from None
    if req.marker is not None or req.url is not None:
        raise refuse(raw, "environment markers and URLs are not accepted")
    return Requested(raw=raw, argument=str(req), name=canonicalize_name(req.name))


def _looks_like_path(text: str) -> bool:
    return "/" in text or text.startswith(".") or text.lower().endswith(_ARCHIVES)


def _local(raw: str, text: str, root: Path) -> Requested:
    """Test-only allowance: a wheel or project folder inside the workspace."""
    path = resolve_inside(root, text, need_name=True)
    if not path.exists():
        raise refuse(raw, "no such file or folder in the workspace")
    name: str | None = None
    if path.suffix == ".whl":
        try:
            name = canonicalize_name(parse_wheel_filename(path.name)[0])
        except InvalidWheelFilename:
            raise refuse(raw, "it is not a valid wheel file name") from None
    return Requested(raw=raw, argument=str(path), name=name)
