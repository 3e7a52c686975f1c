"""Text from the server (tool descriptions, flag help) made safe for Markdown: what is between
backticks stays code, everything else has Markdown's special characters escaped, so a `<token>`
or a `*.DOMAIN` reads as written on the site and on GitHub."""

from __future__ import annotations

import re

_CODE = re.compile(r"(`[^`]*`)")
_SPECIAL = re.compile(r"([\\*_\[\]|])")


def text(value: str) -> str:
    """`value` as Markdown text that renders as written."""
    parts = _CODE.split(value)
    for n in range(0, len(parts), 2):  # the even parts are outside code spans
        escaped = _SPECIAL.sub(r"\\\1", parts[n])
        parts[n] = escaped.replace("<", "&lt;").replace(">", "&gt;")
    return "".join(parts)


def cell(value: str) -> str:
    """`value` as the text of one table cell, on one line (a pipe in a code span stays as it is:
    Python-Markdown's tables keep code spans whole)."""
    one_line = " ".join(value.split())
    return text(one_line) if one_line else " "


def code(value: str) -> str:
    """`value` as a code span."""
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of cells already rendered."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
