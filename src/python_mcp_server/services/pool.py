"""`KernelPool`: kernels started ahead of need, so a new session or a restart gets one at once.

`take()` hands out a ready kernel and starts a replacement in the background. When none is ready
but one is starting, the caller gets that one as soon as it is up (it has a head start on a cold
start). Size 0 costs nothing: no kernel is started and `take()` returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio

from python_mcp_server.errors import ServerError

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 15.0


class PoolKernel(Protocol):
    """What the pool needs of a kernel: whether it still runs, and a way to stop it."""

    def exit_info(self) -> Any: ...

    async def aclose(self) -> None: ...


K = TypeVar("K", bound=PoolKernel)


class KernelPool(Generic[K]):
    def __init__(
        self,
        size: int,
        start: Callable[[], Awaitable[K]],
        may_start: Callable[[], bool] = lambda: True,
    ) -> None:
        self.size = size
        self._start = start
        self._may_start = may_start
        self._ready: deque[K] = deque()
        self._filling: list[asyncio.Task[K]] = []
        self._claimed: set[asyncio.Task[K]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def starting(self) -> int:
        return len(self._filling)

    def refill(self) -> None:
        """Start kernels in the background until ready + starting reaches the pool size."""
        if self._closed:
            return
        while len(self._ready) + len(self._filling) < self.size and self._may_start():
            task = asyncio.get_running_loop().create_task(self._fill_one())
            self._filling.append(task)
            task.add_done_callback(self._filled)

    async def _fill_one(self) -> K:
        return await self._start()

    def _filled(self, task: asyncio.Task[K]) -> None:
        with contextlib.suppress(ValueError):
            self._filling.remove(task)
        if task in self._claimed or task.cancelled() or self._closed:
            return  # the claimer, or aclose, owns the outcome
        exc = task.exception()
        if exc is not None:
            logger.warning("a pool kernel failed to start: %s", exc)
            return
        self._ready.append(task.result())

    async def take(self, *, defer_refill: bool = False) -> K | None:
        """A started kernel, or None when the pool has none ready or starting. With
        `defer_refill`, a kernel that was ready is handed out without starting its replacement:
        the caller calls `refill` when its short use is over, so that use does not share the
        CPU with a kernel start."""
        while self._ready:
            kernel = self._ready.popleft()
            if kernel.exit_info() is None:
                if not defer_refill:
                    self.refill()
                return kernel
            self._close_later(kernel)
        if not self._filling:
            self.refill()
            return None
        task = self._filling.pop(0)
        self._claimed.add(task)
        self.refill()
        try:
            kernel = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(self._return_claimed)
            raise
        except (ServerError, OSError, RuntimeError):
            return None  # the caller starts one itself and reports that error
        finally:
            self._claimed.discard(task)
        return kernel

    def _return_claimed(self, task: asyncio.Task[K]) -> None:
        """A claimed start finished after its caller gave up: keep the kernel for the next one."""
        if task.cancelled() or task.exception() is not None:
            return
        kernel = task.result()
        if self._closed:
            self._close_later(kernel)
        else:
            self._ready.append(kernel)

    def discard_dead(self) -> None:
        """Drop ready kernels that died while waiting, and start replacements."""
        for kernel in [h for h in self._ready if h.exit_info() is not None]:
            self._ready.remove(kernel)
            self._close_later(kernel)
        self.refill()

    def _close_later(self, kernel: K) -> None:
        task = asyncio.get_running_loop().create_task(kernel.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Stop starting kernels and shut down every kernel the pool holds."""
        self._closed = True
        filling = list(self._filling)
        kernels = list(self._ready)
        self._ready.clear()
        with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
            for task in filling:
                task.cancel()
            for task in filling:
                with contextlib.suppress(BaseException):
                    kernels.append(await task)
            if self._closing:
                await asyncio.gather(*self._closing, return_exceptions=True)
            results = await asyncio.gather(*(h.aclose() for h in kernels), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    logger.error("pool kernel shutdown failed", exc_info=result)
