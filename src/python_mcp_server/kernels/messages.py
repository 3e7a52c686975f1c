"""Pure functions from Jupyter iopub messages to typed output events."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# a display's preview made in the kernel (kernel_ext/images.py), taken out of its metadata
PREVIEW_KEY = "python_mcp_server_preview"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class StreamOutput:
    name: str  # "stdout" | "stderr"
    text: str


@dataclass(frozen=True)
class DisplayOutput:
    """`display_data`, `update_display_data` or `execute_result` (then `execution_count` is set)."""

    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    execution_count: int | None = None
    is_result: bool = False
    display_id: str | None = None
    preview: dict[str, Any] | None = None  # from the kernel: source, mime_type, data (base64)


def _display(content: dict[str, Any], **fields: Any) -> DisplayOutput:
    metadata = dict(content.get("metadata", {}))
    preview = metadata.pop(PREVIEW_KEY, None)
    return DisplayOutput(
        data=dict(content.get("data", {})),
        metadata=metadata,
        preview=preview if isinstance(preview, dict) else None,
        **fields,
    )


@dataclass(frozen=True)
class ErrorOutput:
    ename: str
    evalue: str
    traceback: list[str]


@dataclass(frozen=True)
class ClearOutput:
    wait: bool


@dataclass(frozen=True)
class StatusOutput:
    state: str  # "busy" | "idle" | "starting"


Output = StreamOutput | DisplayOutput | ErrorOutput | ClearOutput | StatusOutput


def parse_iopub(msg: dict[str, Any]) -> Output | None:
    """Turn one iopub message into an event, or None for messages we do not surface."""
    msg_type = msg.get("header", {}).get("msg_type") or msg.get("msg_type")
    content: dict[str, Any] = msg.get("content", {})
    if msg_type == "stream":
        return StreamOutput(
            name=str(content.get("name", "stdout")), text=str(content.get("text", ""))
        )
    if msg_type in ("display_data", "update_display_data"):
        transient = content.get("transient") or {}
        return _display(content, display_id=transient.get("display_id"))
    if msg_type == "execute_result":
        return _display(content, execution_count=content.get("execution_count"), is_result=True)
    if msg_type == "error":
        return ErrorOutput(
            ename=str(content.get("ename", "")),
            evalue=str(content.get("evalue", "")),
            traceback=[strip_ansi(str(line)) for line in content.get("traceback", [])],
        )
    if msg_type == "clear_output":
        return ClearOutput(wait=bool(content.get("wait", False)))
    if msg_type == "status":
        return StatusOutput(state=str(content.get("execution_state", "")))
    return None
