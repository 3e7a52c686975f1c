"""`EnvironmentService`: what the server runs on and the limits it enforces."""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import sys

import anyio.to_thread
from pydantic import BaseModel, Field

from python_mcp_server import __version__
from python_mcp_server.config import ServerConfig
from python_mcp_server.health.system import host_resources
from python_mcp_server.services.environments import EnvironmentUsage, SessionEnvironmentInfo
from python_mcp_server.services.models import SandboxInfo
from python_mcp_server.services.sessions import SessionManager

logger = logging.getLogger(__name__)

_INTERPRETER_TIMEOUT_S = 10.0
_ASK = (
    "import json, platform, sys; print(json.dumps({'version': platform.python_version(), "
    "'implementation': platform.python_implementation()}))"
)


class Limits(BaseModel):
    """The limits in force. Durations are seconds; sizes bytes or characters."""

    execution_timeout_s: float
    script_timeout_s: float
    install_timeout_s: float
    session_idle_timeout_s: float = Field(description="0 means sessions never expire.")
    max_sessions: int
    max_output_chars: int = Field(description="Inline output budget per stream.")
    max_file_read_bytes: int
    max_file_write_bytes: int
    max_list_entries: int
    min_free_memory_mb: int = Field(description="Below this, new work is refused.")


class EnvironmentInfo(BaseModel):
    server_version: str
    python_version: str = Field(description="Version of the kernels' interpreter.")
    python_implementation: str
    kernel_python: str = Field(description="Path of the interpreter the kernels run.")
    server_python: str
    platform: str
    machine: str
    cpu_count: int
    memory_total_bytes: int
    memory_available_bytes: int
    workspace: str = Field(description="The workspace root; all file paths are relative to it.")
    sessions: int = Field(description="Live sessions now.")
    limits: Limits
    sandbox: SandboxInfo
    pythons: list[str] = Field(
        default_factory=list,
        description="Python versions a session may ask for (create_session python=...).",
    )
    environments: EnvironmentUsage | None = None
    session: SessionEnvironmentInfo | None = Field(
        default=None, description="The environment of the session asked about (session_id)."
    )


class EnvironmentService:
    def __init__(self, config: ServerConfig, sessions: SessionManager) -> None:
        self._config = config
        self._sessions = sessions
        self._interpreter: dict[str, str] | None = None

    async def info(
        self, session_id: str | None = None, include_lock: bool = False
    ) -> EnvironmentInfo:
        """The interpreter, the host, the workspace and the limits in force; with `session_id`,
        that session's environment too (and its lock with `include_lock`)."""
        c = self._config
        store = self._sessions.environments
        session_env = None
        if session_id is not None:
            session = await self._sessions.acquire(session_id)
            session_env = await store.describe(
                session_id, session.environment, session.python, include_lock
            )
        host = await anyio.to_thread.run_sync(host_resources)
        interpreter = await self._describe_interpreter()
        return EnvironmentInfo(
            server_version=__version__,
            python_version=interpreter["version"],
            python_implementation=interpreter["implementation"],
            kernel_python=c.kernel_python,
            server_python=sys.executable,
            platform=platform.platform(),
            machine=platform.machine(),
            cpu_count=host.cpu_count,
            memory_total_bytes=host.memory_total_bytes,
            memory_available_bytes=host.memory_available_bytes,
            workspace=str(c.workspace_root),
            sessions=len(self._sessions.ids()),
            limits=Limits(
                execution_timeout_s=c.execution_timeout_s,
                script_timeout_s=c.script_timeout_s,
                install_timeout_s=c.install_timeout_s,
                session_idle_timeout_s=c.session_idle_timeout_s,
                max_sessions=c.max_sessions,
                max_output_chars=c.max_output_chars,
                max_file_read_bytes=c.max_file_read_bytes,
                max_file_write_bytes=c.max_file_write_bytes,
                max_list_entries=c.max_list_entries,
                min_free_memory_mb=c.min_free_memory_mb,
            ),
            sandbox=self._sessions.sandbox.info(c),
            pythons=await anyio.to_thread.run_sync(store.interpreters),
            environments=await store.usage(),
            session=session_env,
        )

    async def _describe_interpreter(self) -> dict[str, str]:
        """Version and implementation of the kernels' interpreter (asked once, then kept)."""
        if self._interpreter is not None:
            return self._interpreter
        python = self._config.kernel_python
        if python == sys.executable:
            self._interpreter = {
                "version": platform.python_version(),
                "implementation": platform.python_implementation(),
            }
            return self._interpreter
        try:
            proc = await asyncio.create_subprocess_exec(
                python,
                "-c",
                _ASK,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), _INTERPRETER_TIMEOUT_S)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            found = json.loads(out)
            self._interpreter = {
                "version": str(found["version"]),
                "implementation": str(found["implementation"]),
            }
        except (OSError, TimeoutError, ValueError, KeyError):
            logger.warning("could not ask %s for its version", python, exc_info=True)
            return {"version": "unknown", "implementation": "unknown"}
        return self._interpreter
