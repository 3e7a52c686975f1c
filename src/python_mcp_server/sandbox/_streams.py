"""Copying bytes between two asyncio streams for the egress proxy: both ways, with half-closes
passed on and one idle timeout shared by the two directions (a long download with a silent
upload is not idle)."""

from __future__ import annotations

import asyncio
import contextlib
import time

_CHUNK = 64 * 1024


class Activity:
    """When bytes last moved on a connection, in either direction (for the idle timeout)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def idle_s(self) -> float:
        return time.monotonic() - self.last


async def copy(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, activity: Activity, idle_s: float
) -> None:
    """Copy until EOF (then half-close `dst`) or until both directions were idle for `idle_s`."""
    while True:
        try:
            async with asyncio.timeout(max(idle_s - activity.idle_s(), 0.01)):
                data = await src.read(_CHUNK)
        except TimeoutError:
            if activity.idle_s() >= idle_s:
                return
            continue
        if not data:
            if dst.can_write_eof() and not dst.is_closing():
                dst.write_eof()
            return
        activity.touch()
        dst.write(data)
        await dst.drain()


async def pipe(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    idle_s: float,
) -> None:
    """Copy both ways until both directions end, one fails, or the pair goes idle."""
    activity = Activity()
    tasks = [
        asyncio.create_task(copy(a[0], b[1], activity, idle_s)),
        asyncio.create_task(copy(b[0], a[1], activity, idle_s)),
    ]
    try:
        # both end on EOF (a half-close is passed on) or idleness; a failure ends the other one
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
