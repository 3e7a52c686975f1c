"""The seam through which a helper process (a script) is started in the kernels' sandbox.

The workspace layer runs scripts but knows nothing of sandboxes; the kernels layer, which does,
implements `Confinement`. A `ConfinedCommand` is the argv to run instead, what runs between fork
and exec, and what to clean up once the process has ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


def _nothing() -> None:
    return None


@dataclass
class ConfinedCommand:
    argv: list[str]
    preexec: Callable[[], None] | None = None
    cleanup: Callable[[], None] = field(default=_nothing)
    wrappers: tuple[str, ...] = ()  # command names of the confinement's own processes
    pass_fds: tuple[int, ...] = ()  # descriptors the process inherits (closed by `cleanup`)
    # after it ended: how many processes it left running that the confinement ended (None:
    # unknown, count them another way)
    left_running: Callable[[], int | None] | None = None
    env: dict[str, str] = field(default_factory=dict)  # for the launching process itself


class Confinement(Protocol):
    def command(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        python: str | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> ConfinedCommand:
        """`argv` wrapped so that it runs confined, in `cwd` with exactly `env` (plus basics);
        `python` (default the kernels') runs it, `read_only` are further folders it reads."""
        ...
