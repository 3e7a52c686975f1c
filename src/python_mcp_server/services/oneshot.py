"""`OneShots`: kernels for a single run (`execute_python`), discarded afterwards.

A one-shot run gets a fresh kernel from the warm pool (or, with dependencies, one of an
environment built for them), sandboxed like a session's, under an id of its own
(`oneshot-<random>`) that no session tool can reach and `list_sessions` never shows. When the run
ends its kernel is shut down in the background and its environment released; the run counts
toward `--max-sessions` until then.

Its output files (full-size images, plotly pages, the full text of long outputs) are linked from
the result as `kernel://oneshot-.../<file>`, like a session's. They are kept for
`oneshot_outputs_keep_s` after the run so those links can be read, then deleted (swept by the
session supervisor); every one is deleted when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import ServerError, ServerStoppingError
from python_mcp_server.kernels import KernelLimits
from python_mcp_server.services.artifacts import ArtifactStore
from python_mcp_server.services.environments import EnvironmentStore, Progress
from python_mcp_server.services.kernel_start import KernelStarter
from python_mcp_server.services.session import KernelSession, KernelSource

logger = logging.getLogger(__name__)

PREFIX = "oneshot-"
_ENDED = "belonged to a one-shot run (execute_python), whose files are kept for {keep:g} s"


class OneShots:
    def __init__(
        self,
        config: ServerConfig,
        kernels: KernelStarter,
        environments: EnvironmentStore,
        outputs: ArtifactStore,
        *,
        limits: Callable[[], KernelLimits | None],
        check_room: Callable[[], None],
        gone: Callable[[str], ServerError],
    ) -> None:
        self._config = config
        self._kernels = kernels
        self._environments = environments
        self._outputs = outputs
        self._limits = limits
        self._check_room = check_room
        self._gone = gone
        self._live: dict[str, KernelSession] = {}  # running, or being shut down
        self._kept: dict[str, float] = {}  # run id -> when its output files go
        self._closing: set[asyncio.Task[None]] = set()
        self.stopping = False

    @property
    def live(self) -> int:
        """Kernels of one-shot runs, running or being shut down."""
        return len(self._live)

    def sessions(self) -> list[KernelSession]:
        return list(self._live.values())

    @asynccontextmanager
    async def run(
        self, dependencies: list[str] | None, progress: Progress | None = None
    ) -> AsyncIterator[KernelSession]:
        """A started kernel for one run, as a session nobody else can reach; shut down (in the
        background) when the block ends."""
        if self.stopping:
            raise ServerStoppingError
        self._check_room()
        run_id = f"{PREFIX}{secrets.token_hex(6)}"
        env = None
        if dependencies is not None:
            env = await self._environments.create(dependencies, None, progress)
        source: KernelSource = (
            self._kernels
            if env is None
            else self._kernels.for_environment(env.python, env.read_only)
        )
        session = KernelSession(
            run_id,
            "one-shot run",
            config=self._config,
            kernels=source,
            gone=self._gone,
            limits=self._limits(),
        )
        session.environment = env
        self._live[run_id] = session
        try:
            if progress is not None and env is not None:
                await progress("Starting the run's kernel")
            await session.start()
            self._outputs.begin(run_id)
            yield session
        finally:
            self._end_later(session)

    def _end_later(self, session: KernelSession) -> None:
        task = asyncio.get_running_loop().create_task(self._end(session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _end(self, session: KernelSession) -> None:
        run_id = session.session_id
        try:
            with anyio.CancelScope(shield=True):
                # a cell cancelled by its client is being settled (interrupt, then idle); the
                # kernel goes anyway
                await session.close()
                await self._environments.release(session.environment)
        except Exception:  # background boundary: log, never leave the run counted
            logger.exception("shutting down the kernel of %s failed", run_id)
        finally:
            self._live.pop(run_id, None)
        keep = self._config.oneshot_outputs_keep_s
        if keep > 0 and not self.stopping:
            self._kept[run_id] = time.monotonic() + keep
        else:
            await self._remove(run_id)

    async def _remove(self, run_id: str) -> None:
        keep = self._config.oneshot_outputs_keep_s
        folder = self._outputs.end(run_id, _ENDED.format(keep=keep))
        if folder is not None:
            await anyio.to_thread.run_sync(self._outputs.remove, folder)

    async def sweep(self) -> None:
        """Delete the output files whose time is up."""
        now = time.monotonic()
        for run_id in [r for r, until in self._kept.items() if until <= now]:
            del self._kept[run_id]
            await self._remove(run_id)

    async def aclose(self) -> None:
        """The server stops: wait for kernels being shut down, delete every kept file."""
        self.stopping = True
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for session in list(self._live.values()):  # a run still in its block
            with contextlib.suppress(Exception):
                await session.close(release=True)
        for run_id in [*self._kept, *self._live]:
            await self._remove(run_id)
        self._kept.clear()
