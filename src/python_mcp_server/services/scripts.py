"""`ScriptService`: `run_script` honouring PEP 723 inline metadata.

A script that declares what it needs,

    # /// script
    # requires-python = ">=3.11"
    # dependencies = ["rich", "httpx<1"]
    # ///

runs in an ephemeral environment built like a session's own (`EnvironmentStore`: a private venv
over shared layers from uv's cache), with an interpreter that satisfies `requires-python`; the
venv goes when the script ends, the layers stay shared by hash. Neither a session's environment
nor the base one changes. A script without the block runs as before, with the kernels'
interpreter. The block is read as PEP 723 specifies (the reference regular expression, TOML).

With kernels on a gateway, scripts are saved and run where the kernels are (`RemoteScriptRunner`,
through a kernel there); environments are built on this server's disk, out of their reach, so a
script with the block is refused there, saying so.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError
from python_mcp_server.services._pythons import interpreters
from python_mcp_server.services.environments import EnvironmentStore
from python_mcp_server.workspace.models import ScriptRun, WriteResult

# PEP 723's reference expression
_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


class ScriptRunner(Protocol):
    """Saves and runs the scripts of `scripts/`: on this machine (`workspace.ScriptRunner`), or
    where kernels on a gateway are (`RemoteScriptRunner`)."""

    async def save(self, name: str, code: str) -> WriteResult: ...

    async def source(self, name: str) -> str:
        """The start of the script, as text; ScriptNotFoundError when there is none."""
        ...

    async def run(
        self,
        name: str,
        args: list[str] | None = None,
        timeout_s: float | None = None,
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> ScriptRun: ...


def script_metadata(source: str) -> dict[str, Any] | None:
    """The `script` block's TOML, or None without one. Raises on a malformed block."""
    blocks = [m for m in _BLOCK.finditer(source) if m.group("type") == "script"]
    if len(blocks) > 1:
        raise InvalidArgumentError(
            "The script has more than one '# /// script' block; PEP 723 allows one. Merge them."
        )
    if not blocks:
        return None
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(
            f"The script's '# /// script' block is not valid TOML ({exc}). Each line of the "
            "block starts with '# ', e.g. '# dependencies = [\"rich\"]'."
        ) from None


def _dependencies(meta: dict[str, Any]) -> list[str]:
    deps = meta.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InvalidArgumentError(
            "The script's 'dependencies' must be a list of strings, e.g. "
            'dependencies = ["rich", "httpx<1"].'
        )
    return deps


class ScriptService:
    """Saves scripts and runs them, in an environment of their own when they declare one."""

    def __init__(
        self,
        config: ServerConfig,
        runner: ScriptRunner,
        environments: EnvironmentStore | None,
    ) -> None:
        self._config = config
        self.runner = runner
        self._environments = environments  # None: scripts run where no environment can go

    async def save(self, name: str, code: str) -> WriteResult:
        return await self.runner.save(name, code)

    async def run(
        self, name: str, args: list[str] | None = None, timeout_s: float | None = None
    ) -> ScriptRun:
        meta = script_metadata(await self.runner.source(name))
        if meta is None:
            return await self.runner.run(name, args, timeout_s)
        if self._environments is None:
            raise InvalidArgumentError(
                "The script declares its own dependencies (a '# /// script' block, PEP 723), "
                "and this server runs kernels on a gateway, where it cannot build an "
                "environment for it. Remove the block to run it with the kernels' interpreter "
                "and the packages installed there."
            )
        deps = _dependencies(meta)
        python = await self._python_for(meta.get("requires-python"))
        env = await self._environments.create(deps, python)
        try:
            run = await self.runner.run(name, args, timeout_s, env.python, env.read_only)
        finally:
            await self._environments.release(env)
        shown = ", ".join(deps) or "nothing beyond the standard library"
        note = (
            f"Ran in an environment of its own from the script's inline metadata (PEP 723): "
            f"Python {env.interpreter.version} with {shown}; it was removed afterwards."
        )
        return run.model_copy(update={"message": " ".join(filter(None, [run.message, note]))})

    async def _python_for(self, requires: object) -> str | None:
        """The Python version satisfying `requires-python` (the kernels' own when it does)."""
        if requires is None:
            return None
        try:
            spec = SpecifierSet(str(requires))
        except InvalidSpecifier:
            raise InvalidArgumentError(
                f"The script's requires-python {requires!r} is not a version specifier; use "
                "one such as '>=3.11'."
            ) from None
        known = await anyio.to_thread.run_sync(interpreters, self._config.kernel_python)
        for interpreter in known:
            if spec.contains(interpreter.version):
                return interpreter.version
        have = ", ".join(i.version for i in known)
        raise InvalidArgumentError(
            f"The script requires Python {requires}, and this server has {have}. Change "
            "requires-python, or ask for that Python to be installed."
        )
