"""Text the server sends and receives: refusing text that is not valid Unicode, and making
unpaired surrogates sendable (escaped for the model, U+FFFD on the stdio wire)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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
