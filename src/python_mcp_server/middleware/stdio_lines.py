"""Every line a stdio client sends gets an answer, even one the MCP SDK cannot read.

The SDK's stdio transport validates each line as a JSON-RPC message and drops one that fails with
a debug log line, so the client waits for its own timeout. The commonest such line is a request
whose strings hold an unpaired surrogate escape (`"# \\udfff"`): Python's `json` writes and reads
it, the SDK's validator refuses it. `answer_malformed` sits between the transport and the server:

- a message that fails only that way is validated again from the parsed JSON and served, so the
  tools refuse the text with its line and column, as they do over HTTP;
- a line that is not JSON gets a -32700 parse error, and JSON that is not a JSON-RPC message gets
  -32600 (with the request's id when it has one), each saying what was wrong.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

logger = logging.getLogger(__name__)

Inbound = SessionMessage | Exception
_NOT_FOUND = object()


async def answer_malformed(
    source: ObjectReceiveStream[Inbound],
    server: ObjectSendStream[Inbound],
    replies: ObjectSendStream[SessionMessage],
) -> None:
    """Pass `source` on to `server`, reading again or answering (on `replies`) what it could not
    read. Ends, closing `server`, when `source` ends."""
    async with server:
        async for item in source:
            if not isinstance(item, Exception):
                await server.send(item)
                continue
            message, reply = recover(item)
            if message is not None:
                await server.send(SessionMessage(message))
            elif reply is not None:
                logger.info("answered an unreadable message: %s", reply.error.message)
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    await replies.send(SessionMessage(reply))
            else:
                logger.warning("dropped an unreadable message: %s", item)


def recover(exc: Exception) -> tuple[JSONRPCMessage | None, JSONRPCError | None]:
    """The message the transport failed to read, read again; else the error to answer with."""
    if not isinstance(exc, ValidationError):
        return None, None
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else None
    if first is not None and first["type"] == "json_invalid" and isinstance(first["input"], str):
        try:
            decoded = json.loads(first["input"])
        except ValueError as bad:
            return None, _error(None, PARSE_ERROR, f"Parse error: the message is not JSON ({bad}).")
        try:
            return jsonrpc_message_adapter.validate_python(decoded, by_name=False), None
        except ValidationError as invalid:
            return None, _invalid(decoded, invalid)
    return None, _invalid(_top_level(errors), exc)


def _top_level(errors: list[Any]) -> Any:
    """The decoded message, as the validator saw it (an error at its top carries it whole)."""
    for error in errors:
        loc = error["loc"]
        if len(loc) == 1 or (len(loc) == 2 and error["type"] == "missing"):
            return error["input"]
    return _NOT_FOUND


def _invalid(decoded: Any, exc: ValidationError) -> JSONRPCError:
    request_id = decoded.get("id") if isinstance(decoded, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        request_id = None
    shape = "a JSON array" if isinstance(decoded, list) else "not a JSON-RPC 2.0 message"
    detail = _first_problem(exc)
    return _error(
        request_id,
        INVALID_REQUEST,
        f"Invalid request: {shape}; a request needs jsonrpc '2.0', an id, a method and "
        f"optional params ({detail}).",
    )


def _first_problem(exc: ValidationError) -> str:
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if loc and loc[0] == "JSONRPCRequest" and len(loc) > 1:
            return f"{'.'.join(str(part) for part in loc[1:])}: {error['msg']}"
    return str(exc.errors(include_url=False)[0]["msg"])


def _error(request_id: str | int | None, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))
