"""The stdio transport: one JSON-RPC message per line in, one per line out.

We serve stdio ourselves rather than through the MCP SDK's `stdio_server`, for three reasons a
desktop client meets:

- Every line gets an answer. The SDK drops a line it cannot validate, so its client waits for its
  own timeout. Here a line that is not UTF-8 or not JSON gets -32700, and JSON that is not a
  JSON-RPC message (a batch, a wrong id, a missing method) gets -32600, each saying what was
  wrong. A request whose strings hold an unpaired surrogate escape (`"\\udfff"`, which Python's
  `json` writes) is read anyway, so the tools refuse the text with its line and column, as over
  HTTP; one whose id or method holds such a character is refused here, since neither could be
  sent back.
- An answer that cannot be encoded never stops the server: a string with an unpaired surrogate
  is sent with U+FFFD in its place (the SDK's writer dies on it and the server stops answering).
- A signal stops the server at once. The SDK reads standard input in a worker thread that
  shutdown has to wait for until the client sends another line; here a daemon thread reads, and
  nothing waits for it.

While serving, file descriptor 0 reads from the null device and 1 writes to standard error, so
nothing but this transport reads the client's input or writes to the wire (a stray `print` in
the server process goes to the log).

Checked again with mcp 2.3.0 and fastmcp 4.2.3, serving through `FastMCP.run_stdio_async` (the
SDK's `stdio_server`) instead: `tests/test_stdio.py` then fails
`test_every_unreadable_line_over_stdio_gets_an_answer` (a line that is not JSON or not a message,
ids that are not strings or integers, unpaired surrogate escapes in an id, method or argument, and
deep nesting get no answer at all; a request before `initialize` gets a bare "Invalid request
parameters"), `test_an_answer_that_cannot_be_encoded_does_not_stop_the_server` (a progressToken
with a surrogate escape: no answer) and all three cases of
`test_a_signal_stops_the_stdio_server_while_its_input_is_still_open` (idle: the server has not
exited 20 s after SIGTERM while the client's input stays open; running a cell, stubborn: the
interrupted call gets no answer in 20 s). (The SDK's transport now diverts fds 0 and 1 while
serving, as `claimed_stdio` does, and reads a non-UTF-8 line with U+FFFD in place of the bad
bytes.) The FastMCP internals our runner (`server._run_stdio`) needs are in `compat/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any, Final

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from python_mcp_server.text import on_strings, replace_surrogates
from python_mcp_server.transports.in_flight import InFlight

logger = logging.getLogger(__name__)

MAX_LINE_BYTES: Final = 64 * 1024 * 1024  # one message; a longer line is answered, not read
TOO_LONG: Final = b"\x00(too long)\n"  # stands for such a line (by identity)

Inbound = SessionMessage | Exception
_SHAPE: Final = (
    "a message is one JSON object with jsonrpc '2.0', a method, optional params, and for a "
    "request an id that is a string or an integer"
)
_SHAPE_ERROR: Final = f"Invalid request: {_SHAPE}."
_JSON_KINDS: Final = {
    list: "a JSON array (batches are not part of MCP)",
    str: "a JSON string",
    int: "a JSON number",
    float: "a JSON number",
    bool: "a JSON boolean",
    type(None): "JSON null",
}
_NOT_STARTED: Final = (
    "No MCP session yet: send 'initialize' first (protocol 2025-11-25), or put "
    f"'{PROTOCOL_VERSION_META_KEY}' and '{CLIENT_CAPABILITIES_META_KEY}' in params._meta of "
    "every request (protocol 2026-07-28)."
)


@contextlib.contextmanager
def claimed_stdio() -> Iterator[tuple[int, int]]:
    """Private duplicates of fds 0 and 1 for the transport; meanwhile fd 0 reads the null device
    and fd 1 writes to fd 2. The duplicates are never closed: the reader thread may still be
    blocked on its one when serving ends."""
    wire_in = os.dup(0)
    wire_out = os.dup(1)
    for fd in (wire_in, wire_out):
        os.set_inheritable(fd, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    try:
        yield wire_in, wire_out
    finally:
        os.dup2(wire_out, 1)
        os.dup2(wire_in, 0)


class LineReader:
    """Lines of `fd`, read by a daemon thread one at a time (the next only when this one is
    taken), so waiting for one can be cancelled and nothing waits for the thread at exit."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._taken = threading.Semaphore(0)
        self._thread: threading.Thread | None = None

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        with os.fdopen(self._fd, "rb", closefd=False) as wire:
            while line := wire.readline(MAX_LINE_BYTES + 1):
                if len(line) > MAX_LINE_BYTES:  # drop the rest of it; its answer says why
                    while (rest := wire.readline(1 << 20)) and not rest.endswith(b"\n"):
                        pass
                    line = TOO_LONG
                try:
                    loop.call_soon_threadsafe(self._lines.put_nowait, line)
                except RuntimeError:  # the loop is closed: the server is gone
                    return
                self._taken.acquire()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._lines.put_nowait, None)

    async def next_line(self) -> bytes | None:
        """The next line (with its newline), or None at the end of input."""
        if self._thread is None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._pump, args=(loop,), name="stdio-reader", daemon=True
            )
            self._thread.start()
        line = await self._lines.get()
        self._taken.release()
        return line


async def read_messages(
    reader: LineReader,
    server: ObjectSendStream[Inbound],
    replies: ObjectSendStream[SessionMessage],
    in_flight: InFlight,
) -> None:
    """Hand each message to `server`; answer (on `replies`) each line that is not one."""
    started = False  # by `initialize` (2025-11-25) or a request carrying its version (2026-07-28)
    async with server, replies:
        while (raw := await reader.next_line()) is not None:
            try:
                message, problem = parse_line(raw)
            except Exception:  # a bug here must not stop the server: answer and go on
                logger.exception("could not read a message")
                message, problem = None, _error(None, PARSE_ERROR, "Parse error.")
            if not started and isinstance(message, JSONRPCRequest):
                request = message
                started = request.method == "initialize" or _carries_version(request)
                if not started and request.method != "ping":
                    message, problem = None, _error(request.id, INVALID_REQUEST, _NOT_STARTED)
            if message is not None:
                if isinstance(message, JSONRPCRequest):
                    in_flight.add(message.id)
                await server.send(SessionMessage(message))
            elif problem is not None:
                logger.info("answered an unreadable message: %s", problem.error.message)
                await replies.send(SessionMessage(problem))


def _carries_version(request: JSONRPCRequest) -> bool:
    meta = (request.params or {}).get("_meta")
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta


def parse_line(raw: bytes) -> tuple[JSONRPCMessage | None, JSONRPCError | None]:
    """The message on one line, or the error to answer it with (neither for a blank line)."""
    if raw is TOO_LONG:
        return None, _error(
            None,
            PARSE_ERROR,
            f"Parse error: the line is over {MAX_LINE_BYTES} bytes and was dropped. Send a large "
            "file in pieces (write_file with append=true), or create the data with code.",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, _error(
            None,
            PARSE_ERROR,
            f"Parse error: the line is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); send UTF-8 text.",
        )
    if not text.strip():
        return None, None
    try:
        message = jsonrpc_message_adapter.validate_json(text, by_name=False)
    except ValidationError:
        return _read_again(text)
    if isinstance(message, JSONRPCNotification) and '"id"' in text:
        decoded = json.loads(text)  # an "id" the validator dropped: true, null, 1.5, {}
        if isinstance(decoded, dict) and "id" in decoded:
            return None, _error(None, INVALID_REQUEST, _SHAPE_ERROR)
    return message, None


def _read_again(text: str) -> tuple[JSONRPCMessage | None, JSONRPCError | None]:
    """What the strict validator refused: not JSON, not a message, or a message whose strings
    hold unpaired surrogates (served, unless they are in its id or method)."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else exc
        return None, _error(None, PARSE_ERROR, f"Parse error: the line is not JSON ({reason}).")
    request_id = _echoable_id(decoded)
    if isinstance(decoded, dict) and "id" in decoded and request_id is None:
        bad_text = isinstance(decoded["id"], str)
        return None, _error(None, INVALID_REQUEST, _unusable("id") if bad_text else _SHAPE_ERROR)
    try:
        message = jsonrpc_message_adapter.validate_python(decoded, by_name=False)
    except ValidationError as exc:
        return None, _error(
            request_id, INVALID_REQUEST, f"Invalid request: {_SHAPE} ({_problem(decoded, exc)})."
        )
    except RecursionError:
        return None, _error(request_id, INVALID_REQUEST, "Invalid request: it nests too deeply.")
    if not _encodable(getattr(message, "method", "")):
        return None, _error(request_id, INVALID_REQUEST, _unusable("method"))
    return message, None


def _unusable(what: str) -> str:
    return (
        f"Invalid request: its {what} contains an unpaired surrogate character, which is not "
        "valid Unicode; use valid text."
    )


def _echoable_id(decoded: Any) -> str | int | None:
    request_id = decoded.get("id") if isinstance(decoded, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    if isinstance(request_id, str) and not _encodable(request_id):
        return None
    return request_id


def _problem(decoded: Any, exc: ValidationError) -> str:
    """The first problem with the member of the union the message meant to be."""
    if not isinstance(decoded, dict):
        return f"got {_JSON_KINDS.get(type(decoded), 'a JSON value')}"
    meant = "JSONRPCRequest" if "id" in decoded else "JSONRPCNotification"
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if loc and loc[0] == meant:
            where = ".".join(str(part) for part in loc[1:]) or "message"
            return f"{where}: {error['msg']}"
    return str(exc.errors(include_url=False)[0]["msg"])


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def write_messages(
    source: ObjectReceiveStream[SessionMessage], fd: int, in_flight: InFlight
) -> None:
    """Write each message as one line. One that holds an unpaired surrogate (which UTF-8 cannot
    encode) goes out with U+FFFD in its place."""
    async with source:
        async for item in source:
            line = (encode_message(item.message) + "\n").encode("utf-8")
            await anyio.to_thread.run_sync(_write_all, fd, line, abandon_on_cancel=True)
            if isinstance(item.message, JSONRPCResponse | JSONRPCError):
                in_flight.done(item.message.id)


def encode_message(message: JSONRPCMessage) -> str:
    try:
        return message.model_dump_json(by_alias=True, exclude_unset=True)
    except ValueError:  # pydantic's serialization error; the surrogate case is the one we meet
        data = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
        logger.warning("an answer held text that is not valid Unicode; sent with U+FFFD")
        return json.dumps(
            on_strings(data, replace_surrogates), ensure_ascii=False, separators=(",", ":")
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _error(request_id: str | int | None, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))
