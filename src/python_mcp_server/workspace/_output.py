"""A script's output streams: pipes we own, drained into head-and-tail bounded buffers."""

from __future__ import annotations

import asyncio
import os
from collections import deque


class BoundedBytes:
    """Keeps the head and the tail of a byte stream within a budget."""

    def __init__(self, budget: int) -> None:
        self.head_budget = budget // 2
        self.tail_budget = budget - self.head_budget
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.total = 0

    def append(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_budget - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail.append(data)
            self.tail_len += len(data)
            while self.tail_len - len(self.tail[0]) >= self.tail_budget:
                self.tail_len -= len(self.tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > self.head_budget + self.tail_budget

    def render(self) -> str:
        tail = b"".join(self.tail)
        if not self.truncated:
            return (bytes(self.head) + tail).decode("utf-8", errors="replace")
        tail = tail[-self.tail_budget :] if self.tail_budget else b""
        omitted = self.total - len(self.head) - len(tail)
        return (
            self.head.decode("utf-8", errors="replace")
            + f"\n... [{omitted} bytes omitted] ...\n"
            + tail.decode("utf-8", errors="replace")
        )


class OutputPipe:
    """One output stream of a script: the child gets the write end, we drain the read end.

    The pipe is ours rather than asyncio's so that we know its inode (to find every process
    holding it open) and can close our end even when a stray process never lets go. (asyncio's
    own `Process.wait()` also waits for its pipes to close, which such a process puts off.)
    """

    def __init__(self, budget: int) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.inode = os.fstat(self.read_fd).st_ino
        self.sink = BoundedBytes(budget)
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(self.read_fd, "rb", buffering=0)
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
        except BaseException:
            pipe.close()
            self.read_fd = -1
            raise
        self._reader, self._transport = reader, transport

    def close_write(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    async def drain(self) -> None:
        """Read until every writer has closed the pipe."""
        if self._reader is None:
            return
        while chunk := await self._reader.read(65536):
            self.sink.append(chunk)

    def close(self) -> None:
        self.close_write()
        if self._transport is not None:
            self._transport.close()
        elif self.read_fd >= 0:
            os.close(self.read_fd)
        self.read_fd = -1
