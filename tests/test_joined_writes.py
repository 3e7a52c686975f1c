"""`JoinedWrites`: uvicorn's status line and headers, then its body, leave as one write."""

from __future__ import annotations

import asyncio

import pytest

from python_mcp_server.compat.uvicorn_private import _JOIN_LIMIT, JoinedWrites


class _Sent(asyncio.Transport):
    """A transport that keeps what is written to it, as the socket would receive it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def _next_turn() -> None:
    """Let the callbacks already scheduled on the loop run (one turn; not a wait for time)."""
    await asyncio.sleep(0)


@pytest.mark.anyio
async def test_the_head_and_body_of_a_response_leave_as_one_write() -> None:
    sent = _Sent()
    joined = JoinedWrites(sent)
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
    joined.write(b"body")
    assert sent.writes == []
    await _next_turn()
    assert sent.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"]
    joined.write(b"next")  # a later turn: its own write
    await _next_turn()
    assert sent.writes[1:] == [b"next"]


@pytest.mark.anyio
async def test_close_and_a_large_write_send_what_is_held_first_in_order() -> None:
    sent = _Sent()
    joined = JoinedWrites(sent)
    joined.write(b"head")
    big = b"x" * (_JOIN_LIMIT + 1)
    joined.write(big)
    assert sent.writes == [b"head", big]
    joined.write(b"last")
    joined.close()
    assert sent.writes[2:] == [b"last"]
    assert sent.closed
    await _next_turn()  # the flush scheduled for the turn finds nothing left
    assert len(sent.writes) == 3


@pytest.mark.anyio
async def test_whatever_else_is_the_wrapped_transports() -> None:
    sent = _Sent()
    joined = JoinedWrites(sent)
    assert joined.is_closing() is False
    joined.write(b"")  # nothing to send, nothing scheduled
    await _next_turn()
    assert sent.writes == []
    joined.write(b"abc")
    assert joined.get_write_buffer_size() == 3
