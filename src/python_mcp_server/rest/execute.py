"""`POST /execute` (the tool's structured result as JSON) and `POST /execute/stream` (the same
call as Server-Sent Events: output while the cell prints, then the result).

Both run the call in the request's task and cancel it when the client goes away, which
interrupts a running cell as a cancelled MCP call does.

The event stream begins once the tool has accepted its arguments (or once something happens
first: output, progress, a keepalive). A call refused before that (unknown tool, bad arguments)
gets the same 4xx JSON answer as `/execute`; a failure after it ends the stream with an `error`
event. Events (each `data:` is one line of JSON):

- `output`: `{"stream": "stdout" | "stderr", "text": "..."}`, as the cell prints (pieces that
  arrive together are joined; `dropped` counts characters left out when the client reads slower
  than the cell prints; the result has all output);
- `progress`: `{"message": "..."}` (install_dependencies, create_session with dependencies);
- `result`: the tool's structured result, the last event of a call that ran;
- `error`: `{"status": <http status>, "error": {"type": "...", "message": "..."}}`, the last
  event of a call that failed after the stream began.

While nothing happens a `: keepalive` comment goes out every `keepalive_s`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup
from fastmcp import FastMCP
from starlette.types import Receive, Scope, Send

from python_mcp_server.middleware._responses import send_json
from python_mcp_server.rest.calls import (
    Call,
    RestError,
    check_tool,
    parse_call,
    read_body,
    run_call,
)
from python_mcp_server.runtime import streaming_to

logger = logging.getLogger(__name__)

SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE: Final = b": keepalive\n\n"
MAX_PENDING_CHARS: Final = 1_000_000  # output held for a slow reader; older pieces are dropped
MAX_EVENT_CHARS: Final = 64_000  # one output event carries at most this much text


async def _request(mcp: FastMCP[Any], scope: Scope, receive: Receive, send: Send) -> Call | None:
    """The call a POST asks for, or None when it was answered already (refused, or gone)."""
    body = await read_body(receive)
    if body is None:
        return None
    try:
        call = parse_call(scope, body)
        await check_tool(mcp, call.name)
    except RestError as exc:
        await exc.send(send)
        return None
    return call


async def _watch_disconnect(receive: Receive, tg: TaskGroup) -> None:
    """Cancel the call when the client goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass
    logger.info("REST client went away; its call was cancelled")
    tg.cancel_scope.cancel()


class Execute:
    """`POST /execute`: run one tool, answer its structured result."""

    def __init__(self, mcp: FastMCP[Any]) -> None:
        self.mcp = mcp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = await _request(self.mcp, scope, receive, send)
        if call is None:
            return
        answer: tuple[int, dict[str, Any]] | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_disconnect, receive, tg)
            try:
                answer = 200, await run_call(self.mcp, call)
            except RestError as exc:
                answer = exc.status, exc.payload()
            tg.cancel_scope.cancel()
        if answer is not None:
            await send_json(send, *answer)


class _Events:
    """What a running call produced and the stream has not sent yet (it is the call's
    `LiveOutput`)."""

    def __init__(self) -> None:
        self._output: list[tuple[str, str]] = []
        self._pending = 0
        self._dropped = 0
        self._progress: list[str] = []
        self.begun = False  # the tool accepted its arguments
        self.wake = anyio.Event()

    def started(self) -> None:
        self.begun = True
        self.wake.set()

    def output(self, stream: str, text: str) -> None:
        if not text:
            return
        self._output.append((stream, text))
        self._pending += len(text)
        while self._pending > MAX_PENDING_CHARS and len(self._output) > 1:
            _, old = self._output.pop(0)
            self._pending -= len(old)
            self._dropped += len(old)
        self.wake.set()

    async def progress(self, message: str) -> None:
        self._progress.append(message)
        self.wake.set()

    def take(self) -> list[bytes]:
        """The events to send now: progress first, then output, same-stream pieces joined."""
        self.wake = anyio.Event()
        events = [event("progress", {"message": m}) for m in self._progress]
        self._progress.clear()
        output, self._output, self._pending = self._output, [], 0
        joined: list[tuple[str, str]] = []
        for stream, text in output:
            if joined and joined[-1][0] == stream and len(joined[-1][1]) < MAX_EVENT_CHARS:
                joined[-1] = (stream, joined[-1][1] + text)
            else:
                joined.append((stream, text))
        for stream, text in joined:
            data: dict[str, Any] = {"stream": stream, "text": text}
            if self._dropped:
                data["dropped"] = self._dropped
                self._dropped = 0
            events.append(event("output", data))
        return events


def event(name: str, data: Any) -> bytes:
    """One Server-Sent Event; `data` as one line of JSON."""
    line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {line}\n\n".encode()


class ExecuteStream:
    """`POST /execute/stream`: run one tool, stream its output and then its result."""

    def __init__(self, mcp: FastMCP[Any], keepalive_s: float = 15.0) -> None:
        self.mcp = mcp
        self.keepalive_s = keepalive_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = await _request(self.mcp, scope, receive, send)
        if call is None:
            return
        events = _Events()
        outcome: list[tuple[int, dict[str, Any]]] = []

        async def run() -> None:
            with streaming_to(events):
                try:
                    outcome.append((200, await run_call(self.mcp, call)))
                except RestError as exc:
                    outcome.append((exc.status, exc.payload()))
            events.wake.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_disconnect, receive, tg)
            tg.start_soon(run)
            await self._stream(send, events, outcome)
            tg.cancel_scope.cancel()

    async def _stream(
        self, send: Send, events: _Events, outcome: list[tuple[int, dict[str, Any]]]
    ) -> None:
        begun = False
        while True:
            with anyio.move_on_after(self.keepalive_s) as timer:
                await events.wake.wait()
            quiet = timer.cancelled_caught
            pending = events.take()
            if not begun and outcome and not events.begun and not pending:
                await send_json(send, *outcome[0])  # refused before the tool ran
                return
            if not begun and (events.begun or pending or outcome or quiet):
                begun = True
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            body = b"".join(pending) + (KEEPALIVE if quiet and not pending else b"")
            if outcome:
                status, data = outcome[0]
                body += (
                    event("result", data)
                    if status == 200
                    else event("error", {"status": status, **data})
                )
                await send({"type": "http.response.body", "body": body})
                return
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
