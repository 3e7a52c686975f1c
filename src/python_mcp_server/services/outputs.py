"""One cell's outputs within a budget: `BoundedText` (head + tail, the rest spilled to a file),
`OutputCollector` (the sink for iopub events, with an nbformat copy for notebooks) and
`ProgressPump` (live stdout/stderr as batched progress messages, with keepalives)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio

from python_mcp_server.errors import OutputNotKeptError
from python_mcp_server.kernels.messages import (
    ClearOutput,
    DisplayOutput,
    ErrorOutput,
    Output,
    StreamOutput,
)
from python_mcp_server.text import HeadTail

logger = logging.getLogger(__name__)


class SpillSink(Protocol):
    """The file that takes the full text. Its `write` raises OutputNotKeptError (having removed
    what it held) when the text may not be kept: over the outputs' bound, say."""

    def write(self, text: str, /) -> object: ...

    def close(self) -> None: ...


# Opens the file that takes the full text once it outgrows the budget; returns it and its URI.
SpillOpener = Callable[[str], tuple[SpillSink, str]]
ProgressCallback = Callable[[str], Awaitable[None]]


MAX_DISPLAYS_PER_CELL = 100  # display outputs one result carries; later ones are counted
NOTEBOOK_DISPLAY_BYTES_PER_CELL = 8_000_000  # display data one cell keeps for export_notebook


class BoundedText:
    """Keeps the head and the tail of a text that may be far larger than its budget. Past the
    budget the whole text goes, piece by piece as it arrives, to a spill file."""

    def __init__(
        self, budget: int, spill: Callable[[], tuple[SpillSink, str]] | None = None
    ) -> None:
        self._budget = budget
        self._kept = HeadTail(budget, "")
        self._spill = spill
        self._file: SpillSink | None = None
        self.uri: str | None = None
        self.not_kept: str | None = None  # why the full text was not kept, when it was not

    @property
    def total(self) -> int:
        return self._kept.total

    def append(self, text: str) -> None:
        if not text:
            return
        if self._spill is not None and self.total + len(text) > self._budget:
            self._start_spill()
        if self._file is not None:
            self._write(text)
        self._kept.append(text)

    def _start_spill(self) -> None:
        """Open the spill file and write what came before (all of it: nothing was dropped yet)."""
        opener, self._spill = self._spill, None
        assert opener is not None
        try:
            self._file, self.uri = opener()
        except OutputNotKeptError as exc:
            self.not_kept = str(exc)
            return
        except OSError as exc:
            logger.warning("could not open a file for long output: %s", exc)
            return
        self._write(self._kept.head() + self._kept.tail())

    def _write(self, text: str) -> None:
        assert self._file is not None
        try:
            self._file.write(text)
        except OutputNotKeptError as exc:
            self._file = None  # the sink removed what it held
            self.uri = None
            self.not_kept = str(exc)
        except OSError as exc:
            logger.warning("could not write long output to its file: %s", exc)
            self.close()
            self.uri = None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    @property
    def truncated(self) -> bool:
        return self._kept.truncated

    def omitted(self) -> int:
        """Characters left out of `render()`."""
        return self._kept.omitted()

    def render(self) -> str:
        return self._kept.render(f"; full text: {self.uri}" if self.uri else "")


class OutputCollector:
    """The sink for one cell's iopub outputs."""

    def __init__(
        self,
        budget: int,
        spill: SpillOpener | None = None,
        on_stream: Callable[[str, str], None] | None = None,
    ) -> None:
        self.budget = budget
        self._spill = spill
        self._on_stream = on_stream
        self.stdout = self._bounded("stdout")
        self.stderr = self._bounded("stderr")
        self.result: BoundedText | None = None
        self.error: ErrorOutput | None = None
        self.displays: list[DisplayOutput] = []
        self.notebook: list[dict[str, Any]] = []
        self._nb_stream: dict[str, int] = {}
        self._nb_display: dict[str, int] = {}
        self._nb_sizes: list[int] = []  # rough size of each item of `notebook`
        self._nb_display_bytes = 0
        self.dropped_displays = 0

    def _bounded(self, name: str) -> BoundedText:
        spill = self._spill
        return BoundedText(self.budget, (lambda: spill(name)) if spill is not None else None)

    def feed(self, out: Output) -> None:
        if isinstance(out, StreamOutput):
            target = self.stderr if out.name == "stderr" else self.stdout
            target.append(out.text)
            if self._on_stream is not None:
                self._on_stream(out.name, out.text)
        elif isinstance(out, DisplayOutput):
            if out.is_result and "text/plain" in out.data:
                self.result = self._bounded("result")
                self.result.append(str(out.data["text/plain"]))
            if not out.is_result or set(out.data) != {"text/plain"}:
                self._put_display(out)
        elif isinstance(out, ErrorOutput):
            self.error = out
        elif isinstance(out, ClearOutput):
            self.displays.clear()
        self._record(out)

    def _put_display(self, out: DisplayOutput) -> None:
        """Keep a display; an update of an earlier one (same display id) replaces it in place."""
        if out.display_id is not None:
            for i, existing in enumerate(self.displays):
                if existing.display_id == out.display_id:
                    self.displays[i] = out
                    return
        if len(self.displays) >= MAX_DISPLAYS_PER_CELL:
            self.dropped_displays += 1
            return
        self.displays.append(out)

    def close(self) -> None:
        """Close spill files; call once the cell has finished."""
        for text in (self.stdout, self.stderr, self.result):
            if text is not None:
                text.close()

    def spill_uris(self) -> list[str]:
        texts = (self.stdout, self.stderr, self.result)
        return [t.uri for t in texts if t is not None and t.uri]

    @property
    def nb_bytes(self) -> int:
        """Rough size of what `notebook` holds, for the session's history budget."""
        return sum(self._nb_sizes)

    def _record(self, out: Output) -> None:
        """Keep an nbformat copy of the output for export_notebook, within the same budget."""
        if isinstance(out, StreamOutput):
            self._record_stream(out)
        elif isinstance(out, DisplayOutput):
            self._record_display(out)
        elif isinstance(out, ErrorOutput):
            self.notebook.append(
                {
                    "output_type": "error",
                    "ename": out.ename,
                    "evalue": out.evalue,
                    "traceback": out.traceback,
                }
            )
            self._nb_sizes.append(len(out.evalue) + sum(len(line) for line in out.traceback))
        elif isinstance(out, ClearOutput):
            self.notebook.clear()
            self._nb_sizes.clear()
            self._nb_stream.clear()
            self._nb_display.clear()
            self._nb_display_bytes = 0

    def _record_stream(self, out: StreamOutput) -> None:
        nb = self.notebook
        have = self._nb_stream.get(out.name, 0)
        if have > self.budget:
            return
        text = out.text[: self.budget - have]
        if have + len(out.text) > self.budget:
            bounded = self.stderr if out.name == "stderr" else self.stdout
            where = f" Full text: {bounded.uri}" if bounded.uri else ""
            text += f"\n... [output truncated.{where}]\n"
        self._nb_stream[out.name] = have + len(out.text)
        if nb and nb[-1].get("output_type") == "stream" and nb[-1]["name"] == out.name:
            nb[-1]["text"] += text
            self._nb_sizes[-1] += len(text)
        else:
            nb.append({"output_type": "stream", "name": out.name, "text": text})
            self._nb_sizes.append(len(text))

    def _record_display(self, out: DisplayOutput) -> None:
        """A display joins the notebook, or replaces the one with its display id; what it
        replaces no longer counts toward the budget."""
        kind = "execute_result" if out.is_result else "display_data"
        at = self._nb_display.get(out.display_id) if out.display_id else None
        replaced = self._nb_sizes[at] if at is not None else 0
        data = out.data
        size = sum(len(str(v)) for v in data.values())
        if self._nb_display_bytes - replaced + size > NOTEBOOK_DISPLAY_BYTES_PER_CELL:
            data = {"text/plain": "[display left out of the notebook: over the size budget]"}
            size = len(data["text/plain"])
        self._nb_display_bytes += size - replaced
        item: dict[str, Any] = {"output_type": kind, "data": data, "metadata": out.metadata}
        if out.is_result:
            item["execution_count"] = out.execution_count
        if at is not None:
            self.notebook[at] = item
            self._nb_sizes[at] = size
            return
        if out.display_id:
            self._nb_display[out.display_id] = len(self.notebook)
        self.notebook.append(item)
        self._nb_sizes.append(size)


class ProgressPump:
    """Sends a running cell's stdout/stderr to `send` as it arrives: at most one message per
    `interval_s`, each at most `max_chars` (the latest text is kept), and a keepalive when the
    cell has been silent for `keepalive_s`."""

    def __init__(
        self,
        send: ProgressCallback,
        keepalive_s: float,
        interval_s: float = 0.2,
        max_chars: int = 2000,
    ) -> None:
        self._send = send
        self._keepalive_s = keepalive_s
        self._interval_s = interval_s
        self._max_chars = max_chars
        self._pending: list[str] = []
        self._pending_len = 0
        self._skipped = 0
        self._wake = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def push(self, name: str, text: str) -> None:
        if self._stopped or not text:
            return
        if name == "stderr":
            text = f"[stderr] {text}"
        self._pending.append(text)
        self._pending_len += len(text)
        if self._pending_len > 2 * self._max_chars:
            joined = "".join(self._pending)
            keep = joined[-self._max_chars :]
            self._skipped += len(joined) - len(keep)
            self._pending, self._pending_len = [keep], len(keep)
        self._wake.set()

    def _take(self) -> str:
        text = "".join(self._pending)
        if len(text) > self._max_chars:
            self._skipped += len(text) - self._max_chars
            text = text[-self._max_chars :]
        if self._skipped:
            text = f"[... {self._skipped} characters not streamed; all output is in the result]\n{text}"
        self._pending, self._pending_len, self._skipped = [], 0, 0
        return text

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = last = loop.time()
        while True:
            wait = self._keepalive_s - (loop.time() - last)
            if not self._pending and wait > 0:
                with anyio.move_on_after(wait):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            if self._pending:
                message = self._take()
            elif loop.time() - last >= self._keepalive_s:
                message = f"still running ({loop.time() - started:.0f} s)"
            else:
                continue
            try:
                await self._send(message)
            except Exception:  # the client side failed; stop streaming, the cell goes on
                logger.exception("sending a progress notification failed; streaming stopped")
                self._stopped = True
                return
            last = loop.time()
            await asyncio.sleep(self._interval_s)

    def cancel(self) -> asyncio.Task[None] | None:
        """Stop now; a pending batch is dropped (the result carries all output anyway). Returns
        the task, which ends on the next loop iteration, for the caller to keep a reference."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task
