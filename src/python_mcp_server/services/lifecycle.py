"""The states a session's kernel goes through, and the moves allowed between them.

Pure: no kernel, no I/O. `KernelSession` holds one `Lifecycle` and is the only code that moves it;
a move the table does not allow is a bug in the session code and raises `InvalidTransition`.

```
 STARTING --> IDLE <--> BUSY <--> INTERRUPTING     IDLE, BUSY, INTERRUPTING and DEAD may restart;
               ^  \\                              every state but CLOSED may close.
               |   `-> RESTARTING <--> DEAD        RESTARTING -> DEAD: no new kernel could start.
               `-------------'                     CLOSED: deleted or expired, final.
```
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class SessionState(StrEnum):
    STARTING = "starting"  # the first kernel is starting
    IDLE = "idle"  # a kernel is up and no cell runs
    BUSY = "busy"  # a cell runs
    INTERRUPTING = "interrupting"  # a cell runs and an interrupt was sent
    RESTARTING = "restarting"  # the kernel is being replaced
    DEAD = "dead"  # the kernel process ended and is not yet replaced
    CLOSED = "closed"  # deleted or expired: never used or restarted again


S = SessionState
_LIVE = {S.IDLE, S.BUSY, S.INTERRUPTING, S.DEAD}

ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    S.STARTING: frozenset({S.IDLE, S.CLOSED}),
    S.IDLE: frozenset({S.BUSY, S.RESTARTING, S.DEAD, S.CLOSED}),
    S.BUSY: frozenset({S.IDLE, S.INTERRUPTING, S.RESTARTING, S.DEAD, S.CLOSED}),
    S.INTERRUPTING: frozenset({S.IDLE, S.BUSY, S.RESTARTING, S.DEAD, S.CLOSED}),
    S.RESTARTING: frozenset({S.IDLE, S.DEAD, S.CLOSED}),  # DEAD: no new kernel could start
    S.DEAD: frozenset({S.RESTARTING, S.CLOSED}),
    S.CLOSED: frozenset(),
}

PublicState = Literal["idle", "busy", "starting", "dead"]
_PUBLIC: dict[SessionState, PublicState] = {
    S.STARTING: "starting",
    S.IDLE: "idle",
    S.BUSY: "busy",
    S.INTERRUPTING: "busy",
    S.RESTARTING: "starting",
    S.DEAD: "dead",
    S.CLOSED: "dead",
}


class InvalidTransition(RuntimeError):
    """A move the lifecycle does not allow: a bug in the code that asked for it."""

    def __init__(self, current: SessionState, target: SessionState) -> None:
        super().__init__(f"a session cannot go from {current} to {target}")
        self.current = current
        self.target = target


class Lifecycle:
    """One session's state. `move` checks the table; `public` is what tools report."""

    def __init__(self, state: SessionState = S.STARTING) -> None:
        self._state = state

    @property
    def state(self) -> SessionState:
        return self._state

    def move(self, target: SessionState) -> None:
        if target not in ALLOWED[self._state]:
            raise InvalidTransition(self._state, target)
        self._state = target

    def interrupting(self) -> None:
        """An interrupt was sent: a running cell is now being interrupted (other states stay)."""
        if self._state is S.BUSY:
            self._state = S.INTERRUPTING

    def settle(self) -> None:
        """A cell's call has ended: back to IDLE, unless something else (a restart, a close, a
        death) already took the session elsewhere."""
        if self._state in (S.BUSY, S.INTERRUPTING):
            self._state = S.IDLE

    @property
    def running(self) -> bool:
        """A cell runs in the kernel (interrupted or not)."""
        return self._state in (S.BUSY, S.INTERRUPTING)

    @property
    def closed(self) -> bool:
        return self._state is S.CLOSED

    @property
    def live(self) -> bool:
        """Has a kernel that may be used or replaced (not starting, restarting or closed)."""
        return self._state in _LIVE

    def public(self, kernel_exited: bool) -> PublicState:
        """The state tools report; a kernel that ended shows as dead until it is replaced."""
        if kernel_exited and self._state in _LIVE:
            return "dead"
        return _PUBLIC[self._state]
