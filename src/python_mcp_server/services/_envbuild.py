"""How one environment is made with uv: a read-only layer of packages, and a session's own venv.

A layer is `uv pip install --target <folder> --link-mode hardlink --compile-bytecode`: files come
from uv's cache as hard links (no copy, no new data but the bytecode), wheels only, compiled
once, because a kernel that may not write its environment would otherwise compile every module
on every start. A session's venv is `uv venv` plus one `.pth` file that adds its layers to
`sys.path` after the venv's own site-packages: what the session installs later goes into its venv
and wins over the layers, which never change.

The kernel runtime (ipykernel and what it needs) is a layer of its own, one per interpreter: for
the server's own Python version it pins the versions the server runs (found in uv's cache), for
another version it asks for the same ipykernel. Sandboxed, the layer is built in the installer's
sandbox in a folder inside uv's cache (one mount, so hard links work) and moved into place after.

A package layer sits before the runtime layer on `sys.path`, so a package in it wins over the
runtime's copy. It is therefore resolved with the runtime's needs as constraints (`RuntimeNeeds`):
what the runtime's distributions declare they require of each other (`traitlets>=5.4.0`), and
ipykernel itself exactly. A package may bring another release of a runtime package when the
runtime accepts it; a requirement the runtime cannot run with is refused before anything is
installed, with a message naming the package and what the runtime needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution, distributions
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from python_mcp_server.sandbox.install import DEFAULT_INDEX_VARS, EXTRA_INDEX_VARS, FIND_LINKS_VARS
from python_mcp_server.services._pythons import Interpreter
from python_mcp_server.services._requirements import Requested

PTH_NAME = "_python_mcp_server_env.pth"
RUNTIME_ROOT = "ipykernel"
SERVER_ROOT = "python-mcp-server"
# dependencies of the server that are there for the code kernels run, not for the server itself:
# their versions are the user's to change in the base environment
USER_LIBRARIES = frozenset({"numpy", "pandas", "matplotlib"})
_ROOT_OWNER = "the kernels"
_INDEX_SETTINGS = (*DEFAULT_INDEX_VARS, *EXTRA_INDEX_VARS, *FIND_LINKS_VARS, "UV_OFFLINE")


def runtime_requirements(interpreter: Interpreter) -> list[str]:
    """What a kernel needs: the server's own ipykernel closure, pinned, for the server's Python
    version; the same ipykernel release for another version (whose wheels may differ)."""
    try:
        version = distribution(RUNTIME_ROOT).version
    except PackageNotFoundError:
        return [RUNTIME_ROOT]
    if interpreter.minor != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return [f"{RUNTIME_ROOT}=={version}"]
    return sorted(f"{name}=={v}" for name, v in _closure(RUNTIME_ROOT).items())


def server_pins() -> dict[str, str]:
    """The distributions the server process itself runs on (its own, its dependencies' and
    theirs, but not `USER_LIBRARIES`), with their installed versions; empty when the server is
    not installed as a distribution."""
    return _closure(SERVER_ROOT, skip=USER_LIBRARIES)


def _closure(root: str, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every distribution `root` needs in the server's environment, with its version, following
    the extras each requirement names (`fastmcp-slim[server]`); a name in `skip` is not followed
    (it is in only if something else needs it)."""
    pins: dict[str, str] = {}
    followed: set[tuple[str, str]] = set()  # (name, extra), "" for the base requirements
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        raw, extras = todo.pop()
        name = canonicalize_name(raw)
        wanted = [e for e in ("", *sorted(extras)) if (name, e) not in followed]
        if not wanted or name in skip:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        pins[name] = dist.version
        followed.update((name, e) for e in wanted)
        for text in dist.requires or ():
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
                todo.append((req.name, frozenset(req.extras)))
    return pins


@dataclass(frozen=True)
class Need:
    """One thing the kernel runtime requires: `name` matching `specifier`, for `by`."""

    name: str
    specifier: str
    marker: str | None
    by: str

    def line(self) -> str:
        return f"{self.name}{self.specifier}" + (f" ; {self.marker}" if self.marker else "")


@dataclass(frozen=True)
class RuntimeNeeds:
    """What a runtime layer requires of the packages beside it, and the versions it holds."""

    needs: tuple[Need, ...]
    versions: dict[str, str]

    @classmethod
    def of(cls, site: Path) -> RuntimeNeeds:
        """Read from the runtime layer at `site`: each distribution's declared requirements
        (those of no extra), and ipykernel pinned to the release the layer holds."""
        needs: list[Need] = []
        for dist in distributions(path=[str(site)]):
            owner = canonicalize_name(dist.metadata["Name"] or "")
            if owner == RUNTIME_ROOT:
                needs.append(Need(owner, f"=={dist.version}", None, _ROOT_OWNER))
            for text in dist.requires or ():
                try:
                    req = Requirement(text)
                except InvalidRequirement:
                    continue
                marker = str(req.marker) if req.marker is not None else None
                if req.url or not req.specifier or (marker and "extra" in marker):
                    continue
                name = canonicalize_name(req.name)
                needs.append(Need(name, str(req.specifier), marker, f"{owner} {dist.version}"))
        return cls(tuple(sorted(set(needs), key=Need.line)), resolved([site]))

    def constraints(self) -> str:
        """The needs as a constraints file for `uv pip install -c`."""
        return "".join(f"{line}\n" for line in dict.fromkeys(n.line() for n in self.needs))

    def named_in(self, text: str) -> str | None:
        """The first runtime package `text` (uv's account of a conflict) names, with a
        version specifier after it."""
        found: list[tuple[int, str]] = []
        for name in {need.name for need in self.needs}:
            spelled = r"[-_.]".join(re.escape(part) for part in re.split(r"[-_.]", name))
            m = re.search(rf"(?<![\w.-]){spelled}(?=\s*(?:[<>=!~]|$))", text, re.IGNORECASE)
            if m is not None:
                found.append((m.start(), name))
        return min(found)[1] if found else None

    def explain(self, name: str) -> str:
        """What the runtime needs of `name`: `traitlets>=5.4.0 (ipykernel 7.4.0 requires it;
        the kernels run traitlets 5.16.1)`."""
        mine = [need for need in self.needs if need.name == name]
        wanted = SpecifierSet(",".join(need.specifier for need in mine))
        owners = sorted({need.by for need in mine} - {_ROOT_OWNER})
        if not owners:
            return f"{name}{wanted} ({_ROOT_OWNER} run it)"
        shown = owners[:3] + ([f"{len(owners) - 3} more"] if len(owners) > 3 else [])
        who = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
        verb = "requires" if len(owners) == 1 else "require"
        running = self.versions.get(name)
        runs = f"; the kernels run {name} {running}" if running else ""
        return f"{name}{wanted} ({who} {verb} it{runs})"


def layer_key(
    interpreter: Interpreter,
    requirements: list[str],
    source_builds: bool,
    runtime: str | None = None,
) -> str:
    """The content hash of a layer: the interpreter, the sorted requirements, the index
    settings (the same inputs resolve to the same packages while the index stays the same) and,
    for a package layer, the runtime layer it was resolved against."""
    index = {var: os.environ.get(var, "") for var in _INDEX_SETTINGS}
    inputs: list[object] = [interpreter.key, sorted(requirements), index, source_builds]
    blob = json.dumps(inputs + ([runtime] if runtime else []), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def layer_argv(
    uv: str,
    interpreter: Interpreter,
    site: Path,
    requirements: list[str],
    source_builds: bool,
    *,
    constraints: Path | None = None,
    offline: bool = False,
) -> list[str]:
    """`uv pip install --target`; with `constraints` (a file) honoured; `offline`: from uv's
    cache only."""
    argv = [uv, "pip", "install", "--target", str(site), "--python", interpreter.executable]
    argv += ["--link-mode", "hardlink", "--compile-bytecode"]
    if not source_builds:
        argv += ["--only-binary", ":all:"]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    if offline:
        argv += ["--offline"]
    return [*argv, *requirements]


def venv_argv(uv: str, interpreter: Interpreter, folder: Path) -> list[str]:
    return [uv, "venv", "--quiet", "--no-project", "--python", interpreter.executable, str(folder)]


def site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    return found[0] if found else None


def link_layers(venv: Path, layers: list[Path]) -> None:
    """Add `layers` to the venv's `sys.path`, after its own site-packages, in this order (their
    own .pth files are honoured)."""
    site = site_packages(venv)
    if site is None:
        raise OSError(f"{venv} has no site-packages folder")
    calls = "; ".join(f"site.addsitedir({str(p)!r})" for p in layers)
    (site / PTH_NAME).write_text(f"import site; {calls}\n")


def linked_layers(venv: Path) -> list[Path]:
    """The layers a venv uses, read back from its `.pth` file."""
    site = site_packages(venv)
    try:
        text = (site / PTH_NAME).read_text() if site is not None else ""
    except OSError:
        return []
    return [Path(p) for p in re.findall(r"addsitedir\('([^']*)'\)", text)]


def resolved(paths: list[Path]) -> dict[str, str]:
    """Name and version of every distribution in `paths`; the first path wins, as on sys.path."""
    found: dict[str, str] = {}
    for path in paths:
        for dist in distributions(path=[str(path)]):
            name = dist.metadata["Name"]
            if name:
                found.setdefault(canonicalize_name(name), dist.version)
    return dict(sorted(found.items()))


def own_bytes(root: Path) -> int:
    """Disk a folder takes beyond what it shares by hard links (each inode counted once)."""
    total = 0
    seen: set[int] = set()
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if st.st_nlink > 1 and not os.path.isdir(os.path.join(folder, name)):
                continue  # shared with uv's cache (or another layer): no extra disk
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


_NOT_FOUND = re.compile(r"Because ([\w.\-\[\]]+) was not found in the (package registry|cache)")
_NO_VERSION = re.compile(r"Because there is no version of ([^\s]+?) and you require")
_UNREACHABLE = ("Failed to fetch", "tcp connect error", "dns error", "Could not connect")


def explain_failure(
    requested: list[Requested],
    output: str,
    interpreter: Interpreter,
    runtime: RuntimeNeeds | None = None,
    *,
    for_runtime: bool = False,
) -> str:
    """A message naming the package and what to try, from uv's output (`runtime`: what the
    layer was constrained by, so a conflict with it is told as such; `for_runtime`: the build
    was of the kernel runtime layer, which the `requested` packages wait for)."""
    flat = " ".join(line.strip() for line in output.splitlines())
    where = f"Python {interpreter.version}"
    if m := _NOT_FOUND.search(flat):
        name, place = m.group(1), m.group(2)
        if place == "cache":
            return (
                f"No package named {name!r} is in uv's cache, and this server installs offline "
                "(UV_OFFLINE): check the spelling, or ask the operator to allow the index."
            )
        return (
            f"No package named {name!r} was found in the package index. Check the spelling; the "
            "package name can differ from the import name (scikit-learn for sklearn)."
        )
    if m := _NO_VERSION.search(flat):
        return (
            f"No release matching {m.group(1)!r} exists for {where}: check the version, or loosen "
            "the specifier (for example 'name>=X' instead of 'name==X')."
        )
    if "No solution found" in flat or "unsatisfiable" in flat:
        cause = _causes(output)
        clash = runtime.named_in(cause) if runtime is not None else None
        if runtime is not None and clash is not None:
            running = runtime.versions.get(clash)
            accepts = f" that accepts {clash} {running}" if running else ""
            return (
                f"The kernel runtime needs {runtime.explain(clash)}, and these requirements "
                f"exclude it on {where}: {cause} Drop or loosen the requirement on {clash}, or "
                f"pick a release of the package needing it{accepts}."
            )
        return (
            f"These requirements cannot be installed together on {where}: {cause} Relax or "
            "drop one of the conflicting pins and try again."
        )
    if "has no usable wheels" in flat or "Building source distributions is disabled" in flat:
        return (
            f"A package has no wheel for {where} on this platform, and environments are built "
            f"from wheels only: {_causes(output)} Pick a version that ships wheels, or another "
            "python."
        )
    names = ", ".join(r.raw for r in requested)
    if for_runtime or not names:
        names = f"{names} and the kernel runtime" if names else "the kernel runtime"
    if any(marker in flat for marker in _UNREACHABLE):
        return (
            f"The package index could not be reached for {names}, so nothing was installed: "
            f"{_causes(output)} Try again later; packages already in uv's cache install "
            "without the index."
        )
    return f"The environment for {names} could not be built on {where}: {_causes(output)}"


def _causes(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    picked = [
        re.sub(r"^(error|cause|hint):\s*", "", line)
        for line in lines
        if not line.startswith(("Using ", "Resolved ", "Prepared ", "Installed "))
    ]
    text = " ".join(picked)[-600:]
    return (text or "no output.") if text.endswith(".") else text + "."
