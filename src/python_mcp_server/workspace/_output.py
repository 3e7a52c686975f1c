"""A script's output streams: pipes we own, drained into head-and-tail bounded buffers."""

from __future__ import annotations

import asyncio
import os

from python_mcp_server.text import HeadTail, omission_marker


class BoundedBytes:
    """Keeps the head and the tail of a byte stream within a budget."""

    def __init__(self, budget: int) -> None:
        self._kept = HeadTail(budget, b"")

    @classmethod
    def kept(cls, budget: int, head: bytes, tail: bytes, total: int) -> BoundedBytes:
        """The stream another `BoundedBytes` of the same budget kept (elsewhere: a script run
        by a kernel on a gateway)."""
        bounded = cls(budget)
        bounded._kept = HeadTail.kept(budget, head, tail, total)
        return bounded

    def append(self, data: bytes) -> None:
        self._kept.append(data)

    @property
    def truncated(self) -> bool:
        return self._kept.truncated

    def render(self) -> str:
        kept = self._kept
        if not kept.truncated:
            return (kept.head() + kept.tail()).decode("utf-8", errors="replace")
        return (
            kept.head().decode("utf-8", errors="replace")
            + omission_marker(kept.omitted(), "bytes")
            + kept.tail().decode("utf-8", errors="replace")
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
