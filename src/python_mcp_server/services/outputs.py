"""`OutputCollector`: gathers one cell's outputs within a character budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from python_mcp_server.kernels.messages import (
    ClearOutput,
    DisplayOutput,
    ErrorOutput,
    Output,
    StreamOutput,
)


class BoundedText:
    """Keeps the head and the tail of a stream that may be far larger than its budget."""

    def __init__(self, budget: int) -> None:
        self._head_budget = budget // 2
        self._tail_budget = budget - self._head_budget
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.total = 0

    def append(self, text: str) -> None:
        self.total += len(text)
        room = self._head_budget - self._head_len
        if room > 0:
            part = text[:room]
            self._head.append(part)
            self._head_len += len(part)
            text = text[room:]
        if not text:
            return
        self._tail.append(text)
        self._tail_len += len(text)
        if self._tail_len > 2 * self._tail_budget:
            joined = "".join(self._tail)[-self._tail_budget :]
            self._tail = [joined]
            self._tail_len = len(joined)

    @property
    def truncated(self) -> bool:
        return self.total > self._head_budget + self._tail_budget

    def omitted(self) -> int:
        return max(0, self.total - self._head_budget - self._tail_budget)

    def render(self, marker: str = "") -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)
        if not self.truncated:
            return head + tail
        tail = tail[-self._tail_budget :]
        note = f"\n... [{self.omitted()} characters omitted{marker}] ...\n"
        return head + note + tail


@dataclass
class OutputCollector:
    """The sink for one cell's iopub outputs."""

    budget: int
    stdout: BoundedText = field(init=False)
    stderr: BoundedText = field(init=False)
    result: str | None = None
    error: ErrorOutput | None = None
    displays: list[DisplayOutput] = field(default_factory=list)
    notebook: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stdout = BoundedText(self.budget)
        self.stderr = BoundedText(self.budget)

    def feed(self, out: Output) -> None:
        self._record(out)
        if isinstance(out, StreamOutput):
            target = self.stderr if out.name == "stderr" else self.stdout
            target.append(out.text)
        elif isinstance(out, DisplayOutput):
            if out.is_result and "text/plain" in out.data:
                self.result = str(out.data["text/plain"])
            if not out.is_result or set(out.data) != {"text/plain"}:
                self.displays.append(out)
        elif isinstance(out, ErrorOutput):
            self.error = out
        elif isinstance(out, ClearOutput):
            self.displays.clear()

    def _record(self, out: Output) -> None:
        """Keep an nbformat copy of the output for export_notebook, within the same budget."""
        nb = self.notebook
        if isinstance(out, StreamOutput):
            if nb and nb[-1].get("output_type") == "stream" and nb[-1]["name"] == out.name:
                have = len(nb[-1]["text"])
                if have < self.budget:
                    nb[-1]["text"] += out.text[: self.budget - have]
            else:
                nb.append(
                    {"output_type": "stream", "name": out.name, "text": out.text[: self.budget]}
                )
        elif isinstance(out, DisplayOutput):
            kind = "execute_result" if out.is_result else "display_data"
            item: dict[str, Any] = {"output_type": kind, "data": out.data, "metadata": out.metadata}
            if out.is_result:
                item["execution_count"] = out.execution_count
            nb.append(item)
        elif isinstance(out, ErrorOutput):
            nb.append(
                {
                    "output_type": "error",
                    "ename": out.ename,
                    "evalue": out.evalue,
                    "traceback": out.traceback,
                }
            )
