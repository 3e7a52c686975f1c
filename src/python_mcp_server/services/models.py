"""Result values shared by the services and returned by the tools (pydantic, so tools get schemas)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, PrivateAttr
from pydantic.json_schema import SkipJsonSchema

if TYPE_CHECKING:
    from python_mcp_server.kernels import KernelLimits


class ErrorInfo(BaseModel):
    """An exception raised by the user's code, or the kernel process ending mid-cell."""

    ename: str = Field(
        description="Exception class name, e.g. 'ZeroDivisionError'; 'KernelDied' when the "
        "kernel process ended while the cell ran (then `message` says how and that it restarted)."
    )
    evalue: str = Field(description="Exception message.")
    traceback: list[str] = Field(
        default_factory=list, description="Traceback lines, no ANSI codes."
    )


class ImageInfo(BaseModel):
    """An image the cell displayed: a full-resolution file and, usually, an inline preview."""

    mime_type: str = Field(description="Format of the full-resolution file.")
    uri: str | None = Field(
        default=None, description="Full-resolution file, as a kernel:// resource."
    )
    width: int | None = Field(default=None, description="Full-resolution width in pixels.")
    height: int | None = Field(default=None, description="Full-resolution height in pixels.")
    preview_mime_type: str | None = Field(
        default=None, description="Format of the inline preview; None when none was sent."
    )
    preview_width: int | None = None
    preview_height: int | None = None
    preview_bytes: int = Field(default=0, description="Size of the inline preview.")
    preview: SkipJsonSchema[bytes] = Field(default=b"", exclude=True, repr=False)


class ArtifactInfo(BaseModel):
    """A file the cell created, changed or produced."""

    path: str = Field(description="Path relative to the workspace root.")
    uri: str
    size: int
    mime_type: str


class DisplayInfo(BaseModel):
    """Rich display data other than images (HTML, markdown, JSON, plotly), bounded."""

    mime_type: str
    content: str = Field(description="The content, cut to the output budget when truncated.")
    truncated: bool = False
    uris: list[str] = Field(
        default_factory=list,
        description="kernel:// files with the full content (plotly: interactive HTML and JSON).",
    )
    output: int = Field(
        default=0,
        description="Which display output of the cell this came from (0-based); one output can "
        "carry several formats of the same thing.",
    )
    is_result: bool = Field(
        default=False, description="True for formats of the last expression's value."
    )


class ExecutionResult(BaseModel):
    """The outcome of running code in a session."""

    session_id: str
    status: Literal["ok", "error", "timeout"] = Field(
        description="'ok': the code ran; 'error': it raised (see error) or the kernel died; "
        "'timeout': it ran past the time limit and was stopped."
    )
    execution_count: int | None = Field(default=None, description="The cell number in the session.")
    duration_ms: float
    stdout: str = ""
    stderr: str = ""
    result: str | None = Field(default=None, description="text/plain of the last expression.")
    error: ErrorInfo | None = None
    message: str | None = Field(
        default=None,
        description="What the server did beyond running the code: timeout handling, a kernel that "
        "died and was restarted, truncated output.",
    )
    state_kept: bool = Field(
        default=True, description="False when the kernel was restarted and variables were lost."
    )
    images: list[ImageInfo] = Field(default_factory=list)
    displays: list[DisplayInfo] = Field(default_factory=list)
    files: list[ArtifactInfo] = Field(
        default_factory=list, description="Workspace files this cell created or changed."
    )
    output_files: list[str] = Field(
        default_factory=list, description="URIs of full outputs that were too long to inline."
    )
    _notes: tuple[str, ...] = PrivateAttr(default=())

    @property
    def notes(self) -> tuple[str, ...]:
        """The notes `message` joins, one per thing the server did, for clients that take them
        as log messages (not part of the result itself)."""
        return self._notes

    def with_notes(self, notes: Iterable[str]) -> ExecutionResult:
        self._notes = tuple(notes)
        return self


class KernelLimitsInfo(BaseModel):
    """What one session's kernel may use (enforced only while sandboxed)."""

    memory_mb: int | None = Field(default=None, description="None: no limit.")
    max_processes: int | None = None
    cpus: float | None = None

    @classmethod
    def of(cls, limits: KernelLimits | None) -> KernelLimitsInfo | None:
        """The limits a session's kernels run under; None when they are not sandboxed."""
        if limits is None:
            return None
        return cls(
            memory_mb=limits.memory_mb or None,
            max_processes=limits.max_processes or None,
            cpus=limits.cpus,
        )


class ProtectionInfo(BaseModel):
    name: str
    active: bool
    detail: str


class RefusalInfo(BaseModel):
    """A connection the egress proxy refused."""

    at: str = Field(description="ISO 8601 time, UTC.")
    host: str
    port: int
    status: int
    reason: str


class SandboxInfo(BaseModel):
    """How kernels are contained: the mode asked for and each protection, active or not."""

    mode: Literal["auto", "on", "off"]
    enabled: bool
    protections: list[ProtectionInfo] = Field(default_factory=list)
    network: Literal["none", "allowlist", "full"]
    allowed_hosts: list[str] = Field(default_factory=list)
    default_limits: KernelLimitsInfo
    refused_connections: int = Field(
        default=0, description="Connections the egress proxy refused since the server started."
    )
    recent_refusals: list[RefusalInfo] = Field(default_factory=list)


class SessionInfo(BaseModel):
    session_id: str
    description: str | None = None
    created: str = Field(description="ISO 8601 time, UTC.")
    last_used: str = Field(description="ISO 8601 time, UTC.")
    execution_count: int
    state: Literal["idle", "busy", "starting", "dead"]
    kernel_pid: int | None = None
    python: str
    limits: KernelLimitsInfo | None = Field(
        default=None, description="Enforced limits; None when kernels are not sandboxed."
    )
    environment: Literal["base", "own"] = Field(
        default="base",
        description="'own': the session has an environment of its own (create_session with "
        "dependencies or python), where its installs go; 'base': the server's, shared.",
    )
    dependencies: list[str] | None = Field(
        default=None, description="The requirements its own environment was created with."
    )


class SessionList(BaseModel):
    sessions: list[SessionInfo]
    max_sessions: int
    current_session: str = Field(
        description="The session your calls use when session_id is omitted."
    )


class ActionResult(BaseModel):
    """The outcome of a session or kernel action."""

    session_id: str
    ok: bool = True
    message: str


class DroppedVariable(BaseModel):
    name: str
    reason: str = Field(description="Why it was not carried over.")


class RestartResult(ActionResult):
    """The outcome of restart_kernel."""

    kernel_pid: int | None = None
    state_preserved: bool = Field(
        default=False, description="True when preserve_state was asked for and variables moved."
    )
    restored: list[str] = Field(
        default_factory=list, description="Variables carried over into the new kernel."
    )
    dropped: list[DroppedVariable] = Field(
        default_factory=list, description="Variables that were not carried over, with the reason."
    )
