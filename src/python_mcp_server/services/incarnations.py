"""`Incarnations`: which kernel of each session name is live, how the earlier ones ended, and which
one each caller last ran code in.

A name outlives its kernels: `default` deleted by one client is started again by the next call
from any client, and a deleted name can be created again. A call that lands in a new kernel under
a name it used before must be told (its variables are gone), not handed an empty kernel as if
nothing happened. Callers with an identity (stdio, MCP sessions) are each told once, on their
first call to the new kernel, unless they ended the old one themselves; calls without one
(stateless HTTP) cannot be told apart, so the first call to a kernel started implicitly is told.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MEMORY = 256  # ended kernels remembered, to tell callers what happened
_CALLERS_MEMORY = 4096  # (caller, name) pairs remembered


@dataclass(frozen=True)
class SessionEnd:
    """How one kernel of a session name ended."""

    session_id: str
    incarnation: int
    how: Literal["deleted", "expired"]
    at: float
    by: str | None = None  # the caller that deleted it, when it has an identity
    idle_s: float = 0.0  # for an expiry: the idle timeout

    def notice(self) -> str:
        """What a call that finds a new kernel under this name is told."""
        if self.how == "expired":
            return (
                f"Session {self.session_id!r} had expired after {self.idle_s:.0f} s without use, "
                "so a fresh kernel was started; earlier variables are gone."
            )
        at = datetime.fromtimestamp(self.at, tz=UTC).strftime("%H:%M:%S UTC")
        return (
            f"Session {self.session_id!r} was deleted by another call at {at} "
            "(delete_session); this is a new kernel, and earlier variables are gone."
        )


class Incarnations:
    """The kernels of each session name, numbered in the order they started."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._live: dict[str, int] = {}  # name -> its live kernel
        self._ended: OrderedDict[int, SessionEnd] = OrderedDict()
        self._last_end: OrderedDict[str, SessionEnd] = OrderedDict()  # names with no live kernel
        self._untold: dict[str, SessionEnd] = {}  # told to the first call to the new kernel
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def started(self, session_id: str, *, implicit: bool) -> None:
        """A kernel of `session_id` is live. `implicit`: started by a call, not by
        create_session, so the first call to it is told how the previous one ended."""
        self._live[session_id] = next(self._numbers)
        previous = self._last_end.pop(session_id, None)
        if implicit and previous is not None:
            self._untold[session_id] = previous
        else:
            self._untold.pop(session_id, None)

    def ended(
        self,
        session_id: str,
        how: Literal["deleted", "expired"],
        *,
        at: float,
        by: str | None = None,
        idle_s: float = 0.0,
    ) -> None:
        number = self._live.pop(session_id, None)
        if number is None:
            return
        end = SessionEnd(session_id, number, how, at, by, idle_s)
        _remember(self._ended, number, end, _MEMORY)
        _remember(self._last_end, session_id, end, _MEMORY)
        self._untold.pop(session_id, None)
        if by is not None:  # the deleting caller knows; it is not told again
            self._seen.pop((by, session_id), None)

    def last_end(self, session_id: str) -> SessionEnd | None:
        """How the last kernel of `session_id` ended, while none is live."""
        return self._last_end.get(session_id)

    def news(self, session_id: str, caller: str | None) -> str | None:
        """What a call of `caller` that runs code in `session_id` must be told about earlier
        kernels of that name, once; it is then counted as having seen the live one."""
        number = self._live.get(session_id)
        if number is None:
            return None
        seen = self._seen.get((caller, session_id)) if caller is not None else None
        notice = None
        if seen is not None and seen != number:
            end = self._ended.get(seen)
            notice = end.notice() if end is not None else _forgotten(session_id)
        untold = self._untold.get(session_id)
        if untold is not None and (caller is None or untold.by != caller):
            del self._untold[session_id]
            if seen is None:
                notice = untold.notice()
        if caller is not None:
            _remember(self._seen, (caller, session_id), number, _CALLERS_MEMORY)
        return notice


def _forgotten(session_id: str) -> str:
    return (
        f"Session {session_id!r} is a new kernel since your last call to it (the one you used "
        "ended); earlier variables are gone."
    )


def _remember(memory: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    """Keep `key` in a bounded memory (the oldest are forgotten)."""
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > limit:
        memory.popitem(last=False)
