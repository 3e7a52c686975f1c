"""Interrupts that land in the user's code, never in the kernel's own.

ipykernel turns SIGINT into KeyboardInterrupt for the whole time it handles a request. One that
arrives in the kernel's code around the cell (parsing it, running hooks, building the reply:
milliseconds, but a short time limit meets them) is caught by ipykernel, which then sends no
reply at all, and the server cannot tell a finished cell from a stuck one. Here a SIGINT raises
only while the user's code runs (a cell's code, or a probe, completion or inspection, which call
the user's objects); one that arrives before a cell's code starts is raised as it starts, and one
that arrives after it finished is dropped (the cell completed). The execute reply says which
happened (`report`), so the server knows whether a cell it interrupted finished on its own.

An async cell (top-level `await`) that is waiting is not running: the event loop is. An interrupt
then cancels the cell where it waits, shown as the KeyboardInterrupt it was (ipykernel's own hook
for this never fires), so an awaiting cell stops with its variables kept rather than restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

# run in place of the cell when the interrupt came before the cell's first line
INTERRUPTED = compile("raise KeyboardInterrupt", "<interrupted before the code ran>", "exec")

# ipykernel's (private) context manager around an async cell, replaced by `Guard.cancel_on_sigint`;
# tests/test_kernel_ext.py notices when ipykernel renames it or stops using it
ASYNC_CELL_HOOK = "_cancel_on_sigint"

LANDED = "landed"  # the interrupt raised KeyboardInterrupt in the user's code
OUTSIDE = "outside"  # it arrived after the user's code had finished: dropped


class Guard:
    """Where the SIGINTs of one request landed; `depth` counts the user's code running.

    While a cell runs, IPython's `run_code` (and this guard's wrapper of it) also has lines of
    its own around the user's code: the lines after the code finished, and the traceback it
    shows for an error. A SIGINT that the interpreter delivers there (it runs the handler at the
    next bytecode of the main thread, which may be after the code returned) is not raised:
    raised there, it would escape `run_code`'s own handling and ipykernel would send no reply."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False
        self.landed = False
        self.cells: list[Any] = []  # the code objects of the cells running, innermost last
        self.wrappers: set[Any] = set()  # the code of run_code and of its wrapper here
        self.waiting: asyncio.Future[Any] | None = None  # an async cell's task, as it awaits
        self.cancelled = False  # this request's interrupt cancelled an awaiting async cell

    def arm(self) -> None:
        """A request starts: forget the last one's interrupts and take over SIGINT."""
        self.pending = False
        self.landed = False
        self.cancelled = False
        signal.signal(signal.SIGINT, self.on_sigint)

    def on_sigint(self, signum: int, frame: Any) -> None:
        where = self._where(frame)
        if self.depth > 0 and where != "around":
            self.landed = True
            waiting = self.waiting
            if where == "loop" and waiting is not None:
                # an async cell awaiting: its frames are not running, the event loop is. Cancel
                # it where it waits (shown as KeyboardInterrupt), as asyncio.run does on Ctrl-C
                self.cancelled = True
                waiting.get_loop().call_soon_threadsafe(waiting.cancel)
                return
            raise KeyboardInterrupt
        self.pending = True

    def _where(self, frame: Any) -> str:
        """Where `frame` runs: in the cell's code or what it calls (`cell`), in `run_code`'s own
        lines around it or what they call (`around`), or elsewhere (`loop`: the event loop, or
        the kernel between requests)."""
        while frame is not None:
            if frame.f_code in self.cells:
                return "cell"
            if frame.f_code in self.wrappers:
                return "around"
            frame = frame.f_back
        return "loop"

    @contextlib.contextmanager
    def cancel_on_sigint(self, future: asyncio.Future[Any]) -> Iterator[None]:
        """In place of ipykernel's `_cancel_on_sigint` for async cells (which never cancels
        them: its callback is scheduled on a loop that does not run it). The SIGINT handler
        stays this guard's."""
        self.waiting = future
        try:
            yield
        finally:
            self.waiting = None

    def report(self) -> str | None:
        """`LANDED`, `OUTSIDE`, or None when no interrupt came during the request."""
        if self.landed:
            return LANDED
        return OUTSIDE if self.pending else None

    def wrap(self, run_code: Callable[..., Any]) -> Callable[..., Any]:
        """IPython's `run_code`, counted as the user's code; an interrupt that came before it
        raises KeyboardInterrupt in place of the code."""

        async def guarded(code_obj: Any, *args: Any, **kwargs: Any) -> Any:
            if self.pending:
                self.pending = False
                self.landed = True
                code_obj = INTERRUPTED
                kwargs["async_"] = False
            self.cells.append(code_obj)
            self.depth += 1
            try:
                return await run_code(code_obj, *args, **kwargs)
            finally:
                self.depth -= 1
                self.cells.pop()

        self.wrappers.update({guarded.__code__, _code_of(run_code)})
        return guarded

    def wrap_sync(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """A synchronous method that runs the user's objects (the server's probes call reprs
        and lengths; completion and inspection call properties), counted as the user's code."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                self.depth -= 1

        return guarded


def _code_of(function: Any) -> Any:
    """The code object a (bound) function runs."""
    return getattr(getattr(function, "__func__", function), "__code__", None)


def _drop_own_frame(error: BaseException | None) -> None:
    """Cut `Guard.on_sigint`, where the KeyboardInterrupt was raised, off the end of its
    traceback: the user sees the line their code was on, as with Python's own handler."""
    tb = error.__traceback__ if isinstance(error, KeyboardInterrupt) else None
    while tb is not None and tb.tb_next is not None:
        if tb.tb_next.tb_next is None and tb.tb_next.tb_frame.f_code is Guard.on_sigint.__code__:
            tb.tb_next = None
        tb = tb.tb_next


def without_own_frame(
    showtraceback: Callable[..., Any], guard: Guard | None = None
) -> Callable[..., Any]:
    """IPython's `showtraceback`, showing an interrupt without this module's frame, and an async
    cell the guard cancelled as the KeyboardInterrupt it was."""

    def show(exc_tuple: Any = None, *args: Any, **kwargs: Any) -> Any:
        error = exc_tuple[1] if exc_tuple else sys.exc_info()[1]
        if guard is not None and guard.cancelled and isinstance(error, asyncio.CancelledError):
            interrupt = KeyboardInterrupt().with_traceback(error.__traceback__)
            exc_tuple = (KeyboardInterrupt, interrupt, error.__traceback__)
        _drop_own_frame(error)
        return showtraceback(exc_tuple, *args, **kwargs)

    return show


def install(shell: Any, before_request: Callable[[], None] | None = None) -> Guard | None:
    """Guard the kernel of `shell`; None when it is not an ipykernel shell we can guard.
    `before_request` also runs as each request starts."""
    kernel = getattr(shell, "kernel", None)
    pre_handler_hook = getattr(kernel, "pre_handler_hook", None)
    run_code = getattr(shell, "run_code", None)
    if kernel is None or pre_handler_hook is None or run_code is None:
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    guard = Guard()

    def guarded_pre_handler_hook() -> None:
        pre_handler_hook()  # saves the idle handler (ignore) for post_handler_hook
        guard.arm()
        if before_request is not None:
            before_request()

    kernel.pre_handler_hook = guarded_pre_handler_hook
    shell.run_code = guard.wrap(run_code)
    if callable(getattr(kernel, ASYNC_CELL_HOOK, None)):
        setattr(kernel, ASYNC_CELL_HOOK, guard.cancel_on_sigint)
    showtraceback = getattr(shell, "showtraceback", None)
    if showtraceback is not None:
        shell.showtraceback = without_own_frame(showtraceback, guard)
    # the other requests that run the user's objects: probes' expressions, completion, inspection
    for owner, name in (
        (shell, "user_expressions"),
        (kernel, "do_complete"),
        (kernel, "do_inspect"),
    ):
        method = getattr(owner, name, None)
        if method is not None and not inspect.iscoroutinefunction(method):
            setattr(owner, name, guard.wrap_sync(method))
    return guard
