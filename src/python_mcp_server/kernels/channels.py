"""A kernel's ZMQ socket read straight from the event loop, without pyzmq's per-message futures.

`zmq.asyncio` turns every receive into a Future, a readiness check, an io-state update and a
task wakeup: about a third of the server's CPU for a short cell, which is four messages. Here
one reader callback on the socket's file descriptor drains whatever is queued with non-blocking
receives and hands each message to the handle synchronously; sends are non-blocking too and wait
for room only in the rare case the socket's queue is full.

The socket stays jupyter_client's (its connection, identity and subscriptions): `Channel` uses
a non-owning shadow of it and takes over its descriptor's reader from `zmq.asyncio`, which is
therefore never asked to receive on it again. `close` gives the descriptor back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import zmq

logger = logging.getLogger(__name__)

# messages taken in one callback before yielding to the loop (a cell printing without pause
# must not starve the HTTP side)
_BATCH = 64
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_NOBLOCK = int(zmq.NOBLOCK)


class Channel:
    """One socket of a kernel connection: `on_frames` gets each message's frames, in order."""

    def __init__(
        self,
        socket: Any,
        on_frames: Callable[[list[bytes]], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._sock: zmq.Socket[bytes] = zmq.Socket.shadow(socket.underlying)
        self._on_frames = on_frames
        self._loop = loop
        self._fd = int(self._sock.getsockopt(zmq.FD))
        self._room: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._closed = False
        loop.remove_reader(self._fd)  # zmq.asyncio's own reader, if it had registered one
        loop.add_reader(self._fd, self._readable)
        # the descriptor is edge-triggered: what arrived before the reader was added
        self._schedule()

    def pending(self) -> bool:
        """Whether a message is queued and not read yet."""
        return not self._closed and bool(self._events() & _POLLIN)

    def _events(self) -> int:
        return int(self._sock.getsockopt(_EVENTS))

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._readable)

    def _readable(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        sock = self._sock
        for _ in range(_BATCH):
            events = self._events()
            if events & _POLLOUT and self._room:
                self._wake_senders()
            if not events & _POLLIN:
                return
            frames = sock.recv_multipart(_NOBLOCK)
            try:
                self._on_frames(frames)
            except Exception:  # one bad message must never stop the reading
                logger.exception("kernel message handler failed")
        self._schedule()  # more queued: go on after the loop has served the others

    def _wake_senders(self) -> None:
        room, self._room = self._room, []
        for fut in room:
            if not fut.done():
                fut.set_result(None)

    async def send(self, frames: list[bytes]) -> None:
        """Send one message; waits only while the socket's queue is full."""
        while True:
            if self._closed:
                raise RuntimeError("the kernel's channel is closed")
            try:
                self._sock.send_multipart(frames, _NOBLOCK)
            except zmq.Again:
                fut = self._loop.create_future()
                self._room.append(fut)
                if self._events() & _POLLOUT:  # room came before the future was listed
                    self._wake_senders()
                await fut
                continue
            break
        # a send can consume the descriptor's edge for a message that arrived meanwhile
        if self._events() & _POLLIN:
            self._schedule()

    def close(self) -> None:
        """Stop reading; the socket itself is closed by its owner (jupyter_client)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        for fut in self._room:
            if not fut.done():
                fut.set_exception(RuntimeError("the kernel's channel is closed"))
        self._room = []
