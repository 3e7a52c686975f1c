"""`EnvironmentStore`: the owner of per-session environments (`create_session(dependencies=...)`).

An environment is a session's own small venv whose `sys.path` goes on to shared, read-only layers
(`_envbuild.py` says how each is made): one layer of the requested packages, shared by content
hash (two sessions asking for the same requirements on the same Python use one), and the kernel
runtime layer of that Python. What a session installs later goes into its own venv only.

Layers live under `--env-dir` (default `~/.cache/python-mcp-server/envs`), not in the workspace:

    layers/<hash>/site            the packages (on sys.path)
    layers/<hash>/manifest.json   requirements, resolved versions, disk use; its mtime: last use
    venvs/<pid>-<token>/          one session's venv (pid: the server that made it)

A layer is counted while sessions of this server use it; one that no session (of any server
sharing the folder) has used for `--env-keep` is removed by the supervisor; at start, the venvs
of servers that are gone, half-built layers and layers past their time are swept. The runtime
layer of the kernels' own Python, as this server would build it now, is never removed while the
server runs (one built for other pins is another hash, and goes like any layer), and `prepare`
builds it at start, in the background, from uv's cache and at the lowest CPU priority, so the
first session with an environment of its own need not wait ~10-20 s for it. Disk use beyond
the hard links into uv's cache is bounded by `--env-max-mb`: unused layers go first, then a new
environment is refused with a message saying so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import PackageError, ResourceLimitError, ServerError
from python_mcp_server.sandbox.host import SandboxPlan
from python_mcp_server.services._envbuild import (
    RuntimeNeeds,
    explain_failure,
    layer_argv,
    layer_key,
    link_layers,
    linked_layers,
    own_bytes,
    resolved,
    runtime_requirements,
    site_packages,
    venv_argv,
)
from python_mcp_server.services._installer import (
    InstallSandbox,
    run_installer,
    uv_binary,
    uv_cache_dir,
)
from python_mcp_server.services._layers import (
    MANIFEST,
    Layer,
    LayerKind,
    children,
    load,
    mtime,
    owner_alive,
    place,
    touch,
)
from python_mcp_server.services._pythons import (
    Interpreter,
    choose,
    interpreters,
    kernel_interpreter,
)
from python_mcp_server.services._requirements import Requested, parse_requirements

logger = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]
_VENV_TIMEOUT_S = 60.0
_STAGING = "python-mcp-server-staging"
_CONSTRAINTS = "runtime-constraints.txt"


@dataclass(frozen=True)
class SessionEnvironment:
    """One session's environment: its venv and the layers behind it (packages, then runtime)."""

    venv: Path
    interpreter: Interpreter
    requirements: tuple[str, ...]
    layers: tuple[Layer, ...]

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def read_only(self) -> tuple[Path, ...]:
        """What a sandboxed kernel must see besides its interpreter: the layers."""
        return tuple(layer.site for layer in self.layers)

    def paths(self) -> list[Path]:
        """Where its packages are, in `sys.path` order."""
        site = site_packages(self.venv)
        return [*([site] if site is not None else []), *self.read_only]


class EnvironmentUsage(BaseModel):
    """The per-session environments on this server's disk."""

    folder: str = Field(description="Where environments live (--env-dir).")
    layers: int = Field(description="Shared package layers on disk.")
    session_environments: int = Field(description="Sessions of this server with their own.")
    disk_bytes: int = Field(
        description="Disk the environments take beyond the hard links into uv's cache."
    )
    max_bytes: int | None = Field(description="The bound (--env-max-mb); None: unbounded.")
    keep_s: float = Field(description="How long an unused environment is kept (--env-keep).")


class LayerInfo(BaseModel):
    kind: LayerKind
    key: str = Field(description="Content hash; sessions with the same one share the layer.")
    requirements: list[str]


class SessionEnvironmentInfo(BaseModel):
    """One session's environment, and how to make it again."""

    session_id: str
    environment: Literal["own", "base"] = Field(
        description="'own': the session's own (create_session with dependencies or python); "
        "'base': the server's, shared by every session without one."
    )
    python_version: str
    python: str = Field(description="The interpreter its kernel runs.")
    requirements: list[str] | None = Field(
        default=None, description="What its own environment was created with."
    )
    layers: list[LayerInfo] = Field(default_factory=list)
    lock: list[str] | None = Field(
        default=None,
        description="Every distribution it holds now, as name==version lines (`uv pip freeze` "
        "form): pass them as dependencies to create_session to make it again. Only when asked.",
    )


class EnvironmentStore:
    """Makes, shares, counts and removes per-session environments."""

    def __init__(self, config: ServerConfig, plan: SandboxPlan) -> None:
        self._config = config
        self._root = config.env_root
        self._sandbox = InstallSandbox(plan, config) if plan.enabled else None
        self._layers: dict[str, Layer] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._venvs: set[Path] = set()
        self._runtime_key: str | None = None  # the kernels' own runtime layer: kept while we run

    @property
    def root(self) -> Path:
        return self._root

    def interpreters(self) -> list[str]:
        """The Python versions sessions may ask for (the kernels' own first)."""
        return [i.version for i in interpreters(self._config.kernel_python)]

    # ----------------------------------------------------------------- make

    async def create(
        self, dependencies: list[str], python: str | None, progress: Progress | None = None
    ) -> SessionEnvironment:
        """A new environment holding the kernel runtime and `dependencies` on `python`. Raises a
        `ServerError` that names the package and what to try; nothing is left behind."""
        root = self._config.workspace_root
        requested = parse_requirements(dependencies, root) if dependencies else []
        interpreter = await anyio.to_thread.run_sync(choose, python, self._config.kernel_python)
        if uv_binary() is None:
            raise PackageError("Per-session environments need uv, which this server lacks.")
        layers: list[Layer] = []
        try:
            pins = runtime_requirements(interpreter)
            runtime = await self._acquire(interpreter, pins, requested, progress, "runtime")
            layers.append(runtime)
            if requested:
                arguments = [r.argument for r in requested]
                packages = await self._acquire(
                    interpreter, arguments, requested, progress, runtime=runtime
                )
                layers.insert(0, packages)
            venv = await self._make_venv(interpreter, layers)
        except BaseException:
            with anyio.CancelScope(shield=True):
                for layer in layers:
                    await self._drop(layer)
            raise
        self._venvs.add(venv)
        return SessionEnvironment(
            venv, interpreter, tuple(r.argument for r in requested), tuple(layers)
        )

    async def release(self, env: SessionEnvironment | None) -> None:
        """The session using `env` ended: remove its venv, count its layers down."""
        if env is None or env.venv not in self._venvs:
            return
        self._venvs.discard(env.venv)
        await anyio.to_thread.run_sync(shutil.rmtree, env.venv, True)
        for layer in env.layers:
            await self._drop(layer)

    async def _drop(self, layer: Layer) -> None:
        layer.users = max(0, layer.users - 1)
        layer.last_used = time.time()
        await anyio.to_thread.run_sync(touch, layer.folder / MANIFEST)

    async def _acquire(
        self,
        interpreter: Interpreter,
        requirements: list[str],
        requested: list[Requested],
        progress: Progress | None,
        kind: LayerKind = "packages",
        *,
        runtime: Layer | None = None,
        background: bool = False,
    ) -> Layer:
        """The layer of `requirements` (a package layer resolved against `runtime`), loaded or
        built; counted as used unless it is built in the `background` (`prepare`). One build
        per layer at a time: a second caller waits for the first and takes its layer."""
        key = layer_key(interpreter, requirements, False, runtime.key if runtime else None)
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked() and progress is not None:
            what = "the kernel runtime" if kind == "runtime" else ", ".join(requirements)
            await progress(f"Waiting for the environment layer being built: {what}")
        async with lock:
            layer = self._layers.get(key)
            if layer is None:
                layer = await anyio.to_thread.run_sync(load, self._root / "layers" / key)
            if layer is None:
                await self._make_room()
                layer = await self._build(
                    key, kind, interpreter, requirements, requested, progress, runtime, background
                )
            self._layers[key] = layer
            if not background:
                layer.users += 1
            layer.last_used = time.time()
        await anyio.to_thread.run_sync(touch, layer.folder / MANIFEST)
        return layer

    async def prepare(self) -> Layer | None:
        """Build the runtime layer of the kernels' own Python unless it is on disk: from uv's
        cache only (`--offline`), at the lowest CPU priority. Run in the background at start; a
        session asking meanwhile waits for this build rather than making its own. The layer,
        or None: a failure is logged, and the first session builds the layer as usual."""
        started = time.perf_counter()
        try:
            interpreter = await anyio.to_thread.run_sync(kernel_interpreter, self._kernel_python)
            if interpreter is None or uv_binary() is None:
                logger.info("kernel runtime layer not prepared: no usable interpreter or uv")
                return None
            pins = await anyio.to_thread.run_sync(runtime_requirements, interpreter)
            layer = await self._acquire(interpreter, pins, [], None, "runtime", background=True)
        except (ServerError, OSError) as exc:  # the server runs without it
            logger.warning(
                "the kernel runtime layer was not prepared in the background from uv's cache "
                "(%s); the first session with an environment of its own builds it",
                exc,
            )
            return None
        except Exception:  # a background task's top-level handler: the server runs without it
            logger.exception("preparing the kernel runtime layer failed")
            return None
        self._runtime_key = layer.key
        logger.info(
            "kernel runtime layer %s ready (%.1f s)", layer.key, time.perf_counter() - started
        )
        return layer

    @property
    def _kernel_python(self) -> str:
        return self._config.kernel_python

    async def _build(
        self,
        key: str,
        kind: LayerKind,
        interpreter: Interpreter,
        requirements: list[str],
        requested: list[Requested],
        progress: Progress | None,
        runtime: Layer | None,
        background: bool,
    ) -> Layer:
        uv = uv_binary()
        assert uv is not None
        staging = self._staging(uv, key)
        site = staging / "site"
        site.mkdir(parents=True)
        what = "the kernel runtime" if kind == "runtime" else ", ".join(requirements)
        if progress is not None:
            await progress(
                f"Building an environment layer for Python {interpreter.version}: {what}"
            )
        started = time.perf_counter()
        needs: RuntimeNeeds | None = None
        try:
            constraints = None
            if runtime is not None:
                needs = await anyio.to_thread.run_sync(RuntimeNeeds.of, runtime.site)
                constraints = staging / _CONSTRAINTS
                constraints.write_text(needs.constraints())
            argv = layer_argv(
                uv,
                interpreter,
                site,
                requirements,
                source_builds=False,
                constraints=constraints,
                offline=background,
            )
            run = await run_installer(
                argv,
                self._config.install_timeout_s,
                self._config.workspace_root,
                interpreter.executable,
                self._sandbox,
                target=staging,
                lowest_priority=background,
            )
            if run.returncode is None:
                raise PackageError(
                    f"Building the environment for {what} took longer than "
                    f"{self._config.install_timeout_s:g} s (--install-timeout) and was stopped; "
                    "try fewer packages, or again once they are in uv's cache."
                )
            if run.returncode != 0:
                message = explain_failure(
                    requested, run.output, interpreter, needs, for_runtime=kind == "runtime"
                )
                if run.refused:
                    message += " The installer's sandbox refused " + ", ".join(run.refused[:3])
                raise PackageError(message)
            layer = await anyio.to_thread.run_sync(
                place, self._root, staging, key, kind, interpreter, requirements, runtime
            )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, staging, True)
        logger.info(
            "environment layer %s (%s) built in %.2f s, %d KB of its own",
            key,
            what,
            time.perf_counter() - started,
            layer.own_bytes // 1024,
        )
        return layer

    def _staging(self, uv: str, key: str) -> Path:
        """Where a layer is built: inside uv's cache when sandboxed (one mount: hard links)."""
        cache = uv_cache_dir(uv) if self._sandbox is not None else None
        base = cache / _STAGING if cache is not None else self._root / "staging"
        return base / f"{os.getpid()}-{key}-{secrets.token_hex(4)}"

    async def _make_venv(self, interpreter: Interpreter, layers: list[Layer]) -> Path:
        uv = uv_binary()
        assert uv is not None
        folder = self._root / "venvs" / f"{os.getpid()}-{secrets.token_hex(6)}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        argv = venv_argv(uv, interpreter, folder)
        run = await run_installer(argv, _VENV_TIMEOUT_S, folder.parent, interpreter.executable)
        try:
            if run.returncode != 0:
                raise PackageError(
                    f"A virtual environment for Python {interpreter.version} could not be "
                    f"made: {run.output.strip()[-400:]}"
                )
            await anyio.to_thread.run_sync(link_layers, folder, [x.site for x in layers])
            folder.chmod(0o755)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
            raise
        return folder

    # ------------------------------------------------------------- describe

    async def lock(self, env: SessionEnvironment | None, python: str) -> list[str]:
        """What an environment holds now, as `name==version` lines (`uv pip freeze` form): a
        session's own (its venv, then its layers), or the interpreter's (`uv pip freeze`)."""
        if env is not None:
            found = await anyio.to_thread.run_sync(resolved, env.paths())
            return [f"{name}=={version}" for name, version in found.items()]
        uv = uv_binary()
        if uv is None:
            return []
        argv = [uv, "pip", "freeze", "--python", python]
        run = await run_installer(argv, _VENV_TIMEOUT_S, self._config.workspace_root, python)
        lines = run.output.splitlines() if run.returncode == 0 else []
        return sorted((x.strip() for x in lines if "==" in x), key=str.lower)

    async def describe(
        self, session_id: str, env: SessionEnvironment | None, python: str, with_lock: bool
    ) -> SessionEnvironmentInfo:
        """A session's environment: what it was made with, its layers, and (asked) its lock."""
        lock = await self.lock(env, python) if with_lock else None
        if env is not None:
            return SessionEnvironmentInfo(
                session_id=session_id,
                environment="own",
                python_version=env.interpreter.version,
                python=env.python,
                requirements=list(env.requirements),
                layers=[
                    LayerInfo(kind=x.kind, key=x.key, requirements=x.requirements)
                    for x in env.layers
                ],
                lock=lock,
            )
        known = await anyio.to_thread.run_sync(interpreters, self._config.kernel_python)
        version = known[0].version if known else "unknown"
        return SessionEnvironmentInfo(
            session_id=session_id,
            environment="base",
            python_version=version,
            python=python,
            lock=lock,
        )

    async def usage(self) -> EnvironmentUsage:
        layers, disk = await anyio.to_thread.run_sync(self._disk)
        bound = self._config.env_max_mb
        return EnvironmentUsage(
            folder=str(self._root),
            layers=layers,
            session_environments=len(self._venvs),
            disk_bytes=disk,
            max_bytes=bound * 1024 * 1024 if bound > 0 else None,
            keep_s=self._config.env_keep_s,
        )

    def _disk(self) -> tuple[int, int]:
        """How many layers there are, and the disk of layers and venvs beyond hard links."""
        total, count = 0, 0
        for folder in children(self._root / "layers"):
            layer = self._layers.get(folder.name) or load(folder)
            if layer is not None:
                count += 1
                total += layer.own_bytes
        for venv in children(self._root / "venvs"):
            total += own_bytes(venv)
        return count, total

    # --------------------------------------------------------------- remove

    async def sweep(self) -> None:
        """At start: remove the venvs and builds of servers that are gone and the layers that
        no session can use any more (not the runtime layer of the kernels' Python as this
        server builds it: kept while it runs)."""
        await anyio.to_thread.run_sync(self._sweep_dead)
        self._runtime_key = await anyio.to_thread.run_sync(self._own_runtime_key)
        await self.collect()

    def _own_runtime_key(self) -> str | None:
        interpreter = kernel_interpreter(self._kernel_python)
        if interpreter is None:
            return None
        return layer_key(interpreter, runtime_requirements(interpreter), False)

    def _sweep_dead(self) -> None:
        uv = uv_binary()
        cache = uv_cache_dir(uv) if uv is not None else None
        places = [self._root / "venvs", self._root / "staging"]
        places += [cache / _STAGING] if cache is not None else []
        for where in places:
            for folder in children(where):
                if not owner_alive(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)
        for folder in children(self._root / "layers"):
            if not (folder / MANIFEST).exists():
                shutil.rmtree(folder, ignore_errors=True)  # a copy cut short

    async def collect(self, keep_s: float | None = None) -> int:
        """Remove layers no session has used for `keep_s` (default `--env-keep`); how many."""
        keep = self._config.env_keep_s if keep_s is None else keep_s
        now = time.time()
        in_use = await anyio.to_thread.run_sync(self._referenced)
        doomed = []
        for folder in await anyio.to_thread.run_sync(children, self._root / "layers"):
            layer = self._layers.get(folder.name)
            if (layer is not None and layer.users > 0) or folder / "site" in in_use:
                continue
            if folder.name == self._runtime_key:
                continue  # the kernels' own runtime layer: kept while the server runs
            last = max(layer.last_used if layer else 0.0, mtime(folder / MANIFEST))
            if now - last >= keep and not self._lock_held(folder.name):
                self._layers.pop(folder.name, None)
                doomed.append(folder)
        for folder in doomed:
            logger.info("environment layer %s removed (unused)", folder.name)
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
        return len(doomed)

    def _lock_held(self, key: str) -> bool:
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    def _referenced(self) -> set[Path]:
        """The layers some venv on disk (this server's or another's) links to."""
        return {p for venv in children(self._root / "venvs") for p in linked_layers(venv)}

    async def _make_room(self) -> None:
        """Before a build: within the bound, removing unused layers if needed, or refuse."""
        bound = self._config.env_max_mb * 1024 * 1024
        if bound <= 0:
            return
        _, disk = await anyio.to_thread.run_sync(self._disk)
        if disk < bound:
            return
        await self.collect(keep_s=0)
        _, disk = await anyio.to_thread.run_sync(self._disk)
        if disk >= bound:
            raise ResourceLimitError(
                f"No new environment was built: environments take {disk // 2**20} MB of the "
                f"{bound // 2**20} MB this server allows (--env-max-mb), all in use by live "
                "sessions. Delete sessions you no longer need (an environment goes when no "
                "session uses it), or create the session without dependencies."
            )
