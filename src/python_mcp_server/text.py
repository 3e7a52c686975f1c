"""Text the server sends and receives: refusing text that is not valid Unicode, making unpaired
surrogates sendable (escaped for the model, U+FFFD on the stdio wire), and keeping the head and
the tail of a long text with a marker in between."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, AnyStr, Generic

from python_mcp_server.errors import InvalidTextError


def require_text(text: str, what: str) -> str:
    """`text` if it encodes as UTF-8; otherwise an `InvalidTextError` that points at the culprit."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTextError(what, text, exc.start) from None
    return text


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """`text` with each unpaired surrogate written as its escape (`\\udce9`), so it can be sent.
    File names that are not UTF-8 hold them (Python decodes their bytes as U+DC80-U+DCFF)."""
    if text.isascii():
        return text
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def replace_surrogates(text: str) -> str:
    """`text` with each unpaired surrogate replaced by U+FFFD."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def on_strings(value: Any, fix: Callable[[str], str]) -> Any:
    """A JSON value with `fix` applied to every string in it, keys included."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {on_strings(key, fix): on_strings(item, fix) for key, item in value.items()}
    if isinstance(value, list):
        return [on_strings(item, fix) for item in value]
    return value


class HeadTail(Generic[AnyStr]):
    """Keeps the head and the tail of a text or byte stream that may be far larger than its
    `budget`, half of it for each; the middle is counted, not kept."""

    def __init__(self, budget: int, empty: AnyStr) -> None:
        self.head_budget = budget // 2
        self.tail_budget = budget - self.head_budget
        self._empty: AnyStr = empty
        self._head: list[AnyStr] = []
        self._head_len = 0
        self._tail: list[AnyStr] = []
        self._tail_len = 0
        self.total = 0

    @classmethod
    def kept(cls, budget: int, head: AnyStr, tail: AnyStr, total: int) -> HeadTail[AnyStr]:
        """What another `HeadTail` of the same budget kept of a stream of `total` (its `head()`
        and `tail()`), as one again."""
        restored = cls(budget, head[:0])
        restored._head, restored._head_len = [head], len(head)
        restored._tail, restored._tail_len = [tail], len(tail)
        restored.total = total
        return restored

    def append(self, piece: AnyStr) -> None:
        self.total += len(piece)
        room = self.head_budget - self._head_len
        if room > 0:
            part = piece[:room]
            self._head.append(part)
            self._head_len += len(part)
            piece = piece[room:]
        if not piece:
            return
        if len(piece) >= self.tail_budget:
            self._tail = [piece[-self.tail_budget :]] if self.tail_budget else []
            self._tail_len = min(len(piece), self.tail_budget)
            return
        self._tail.append(piece)
        self._tail_len += len(piece)
        if self._tail_len > 2 * self.tail_budget:
            joined = self._empty.join(self._tail)[-self.tail_budget :]
            self._tail = [joined]
            self._tail_len = len(joined)

    @property
    def truncated(self) -> bool:
        return self.total > self.head_budget + self.tail_budget

    def omitted(self) -> int:
        return max(0, self.total - self.head_budget - self.tail_budget)

    def head(self) -> AnyStr:
        return self._empty.join(self._head)

    def tail(self) -> AnyStr:
        """What is kept after the head: all the rest until the budget is passed."""
        tail = self._empty.join(self._tail)
        if not self.truncated:
            return tail
        return tail[-self.tail_budget :] if self.tail_budget else self._empty

    def render(self: HeadTail[str], where: str = "") -> str:
        """The text kept, with a marker where the middle was left out (`where` names the full
        text's place, after a semicolon)."""
        if not self.truncated:
            return self.head() + self.tail()
        return self.head() + omission_marker(self.omitted(), "characters", where) + self.tail()


def omission_marker(count: int, unit: str, where: str = "") -> str:
    """The line that stands for the middle left out of a long text."""
    return f"\n... [{count} {unit} omitted{where}] ...\n"
