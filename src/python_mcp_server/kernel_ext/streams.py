"""What the kernel sends: messages that always encode, and stream output in bounded pieces."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(obj: Any) -> Any:
    """`obj` with every unpaired surrogate in its strings written as a `\\udXXX` escape."""
    if isinstance(obj, str):
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", obj)
    if isinstance(obj, dict):
        return {clean(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


def safe_pack(pack: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """Wrap a session's `pack` so a message with an unpaired surrogate still goes out.

    Such a message (`print("\\ud800")`) is not UTF-8: packing fails, or (U+DC80-U+DCFF, which
    come from undecodable file names) yields bytes that are not UTF-8; either way it is sent
    with the character escaped, so nothing batched with it is lost.
    """

    def packed(obj: Any) -> bytes:
        try:
            data = pack(obj)
            data.decode("utf-8")
        except UnicodeError:
            return pack(clean(obj))
        return data

    return packed


def split_text(text: str, chunk: int) -> tuple[list[str], str]:
    """Pieces of `chunk` characters to send first, and the rest that stays in the message."""
    pieces = []
    start = 0
    while len(text) - start > chunk:
        pieces.append(text[start : start + chunk])
        start += chunk
    return pieces, text[start:]


def splitter(stream: Any, chunk: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An `OutStream` hook that sends a huge stream message as pieces of `chunk` characters.

    ipykernel sends everything printed within 0.2 s as one message; cutting it means the server
    never receives tens of megabytes at once.
    """

    def split(msg: dict[str, Any]) -> dict[str, Any]:
        text = msg.get("content", {}).get("text", "")
        if len(text) <= chunk:
            return msg
        pieces, rest = split_text(text, chunk)
        for piece in pieces:
            part = stream.session.msg(
                "stream", {"name": stream.name, "text": piece}, parent=msg["parent_header"]
            )
            stream.session.send(stream.pub_thread, part, ident=stream.topic)
        msg["content"]["text"] = rest
        return msg

    return split


def install(shell: Any, chunk: int) -> None:
    """Make the kernel's session pack safely and its stdout/stderr split huge messages."""
    session: Any = getattr(getattr(shell, "kernel", None), "session", None)
    pack = getattr(session, "pack", None)
    if pack is not None:
        session.pack = safe_pack(pack)
    streams: tuple[Any, ...] = (sys.stdout, sys.stderr)
    for stream in streams:
        if all(hasattr(stream, a) for a in ("register_hook", "session", "pub_thread", "topic")):
            # hooks are per thread and messages are sent from the kernel's IO thread
            hook = splitter(stream, chunk)
            stream.pub_thread.schedule(lambda s=stream, h=hook: s.register_hook(h))


def broken(stream: Any) -> str | None:
    """What `stream` is when it cannot serve as sys.stdout or sys.stderr, or None if it can.

    ipykernel writes to and flushes both around every request; one that fails there loses the
    request's reply, and the call would wait out its whole time limit."""
    if stream is None:
        return "None"
    kind = type(stream).__name__
    for method in ("write", "flush"):
        if not callable(getattr(stream, method, None)):
            return f"an object of type {kind!r} without a {method}() method"
    try:
        closed = stream.closed is True
    except Exception:  # noqa: BLE001 - any stream the user made: a failing property is broken too
        return f"an object of type {kind!r} whose 'closed' attribute fails"
    return f"a closed {kind}" if closed else None


class Repair:
    """Puts back the kernel's own sys.stdout / sys.stderr when code replaced them with something
    that cannot be written to, and remembers it for the cell's reply (`take`)."""

    def __init__(self, stdout: Any, stderr: Any) -> None:
        self._originals = {"stdout": stdout, "stderr": stderr}
        self._repaired: list[dict[str, str]] = []

    def check(self, *_: Any) -> None:
        for name, original in self._originals.items():
            current = getattr(sys, name)
            if current is original:
                continue
            problem = broken(current)
            if problem is not None and broken(original) is None:
                setattr(sys, name, original)
                self._repaired.append({"stream": name, "was": problem})

    def take(self) -> list[dict[str, str]]:
        """The streams put back since the last call: `stream` (stdout, stderr) and what it `was`."""
        repaired, self._repaired = self._repaired, []
        return repaired
