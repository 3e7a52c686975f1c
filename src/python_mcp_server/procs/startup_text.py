"""Blanking a secret out of this process's own `/proc/self/cmdline` and `/proc/self/environ`.

Linux shows a process's command line (to every local user) and its starting environment (to
its own user) straight from the memory the kernel copied them into at `exec`. Removing a
variable from `os.environ` does not touch that memory, and Python keeps its own copies of
argv, so both go on showing a token the process was started with. Overwriting it there (as
`setproctitle` does with the command line) leaves `/proc` showing asterisks instead; the
interpreter and the C library no longer read those bytes for argv, nor for a variable already
removed with `unsetenv` (which `os.environ.pop` calls).

Elsewhere than Linux, or when the memory does not hold what `/proc` shows, nothing is written.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

_SELF = Path("/proc/self")

# where, within one NUL-ended item, the part to blank starts (None: not this item)
_Finder = Callable[[bytes], int | None]


@dataclass(frozen=True)
class Blanked:
    """Where the secret was found, and overwritten."""

    argv: bool = False
    environ: bool = False


def blank_startup_secret(secret: str, flag: str, env_names: Collection[str]) -> Blanked:
    """Overwrite `secret` where this process's startup argv or environment holds it: an argument
    that is the secret, or `<flag>=<secret>`; the value of each variable in `env_names` (remove
    those from `os.environ` first). Other arguments and variables are left as they are."""
    regions = _regions()
    if not secret or regions is None:
        return Blanked()
    (arg_start, arg_end), (env_start, env_end) = regions
    value = secret.encode()
    argv = _blank_items(
        arg_start, arg_end, _SELF / "cmdline", lambda item: _argv_value(item, value, flag)
    )
    names = [name.encode() + b"=" for name in env_names]
    environ = _blank_items(
        env_start, env_end, _SELF / "environ", lambda item: _env_value(item, names)
    )
    return Blanked(argv=argv, environ=environ)


def _regions() -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Where the kernel put argv and the environment: fields 48-51 of `/proc/self/stat`."""
    try:
        stat = (_SELF / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # fields[0] is field 3, the state
    if len(fields) < 49:
        return None
    arg_start, arg_end, env_start, env_end = (int(f) for f in fields[45:49])
    if not (0 < arg_start < arg_end and 0 < env_start < env_end):
        return None
    return (arg_start, arg_end), (env_start, env_end)


def _argv_value(item: bytes, secret: bytes, flag: str) -> int | None:
    """Offset of the secret within one argument, or None."""
    if item == secret:
        return 0
    prefix = flag.encode() + b"="
    return len(prefix) if item == prefix + secret else None


def _env_value(item: bytes, names: list[bytes]) -> int | None:
    """Offset of the value within one `NAME=value` entry whose name is listed, or None."""
    return next((len(name) for name in names if item.startswith(name)), None)


def _blank_items(start: int, end: int, shown: Path, where: _Finder) -> bool:
    """Overwrite, with asterisks, the part `where` finds of each NUL-ended item in memory
    `start`..`end`, provided that memory holds what `shown` shows. Whether anything was."""
    try:
        seen = shown.read_bytes()
    except OSError:
        return False
    memory = ctypes.string_at(start, end - start)
    if memory != seen:  # not the memory /proc shows (changed, or never it): leave it alone
        return False
    found = False
    offset = 0
    for item in memory.split(b"\0"):
        at = where(item)
        if at is not None and len(item) > at:
            ctypes.memset(start + offset + at, ord("*"), len(item) - at)
            found = True
        offset += len(item) + 1
    return found
