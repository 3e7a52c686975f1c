"""`text.py`: one head-and-tail keeper for every long text (cell output, script output, late
output), pure and tested without a kernel."""

from __future__ import annotations

import pytest

from python_mcp_server.text import HeadTail

PIECES = ["abc", "defgh", "ijklmnop", "qrstuvwxyz", "", "0123456789" * 5, "!"]


def test_a_long_text_keeps_its_head_and_tail_and_counts_the_middle() -> None:
    kept = HeadTail(10, "")
    for piece in PIECES:
        kept.append(piece)
    whole = "".join(PIECES)
    assert kept.render() == f"abcde\n... [{len(whole) - 10} characters omitted] ...\n{whole[-5:]}"


@pytest.mark.parametrize("budget", [0, 1, 7, 10, 25, 200])
def test_bytes_and_text_are_cut_at_the_same_places(budget: int) -> None:
    text, data = HeadTail(budget, ""), HeadTail(budget, b"")
    for piece in PIECES:
        text.append(piece)
        data.append(piece.encode())
    whole = "".join(PIECES)
    assert (data.head().decode(), data.tail().decode()) == (text.head(), text.tail())
    assert text.truncated == (len(whole) > budget)
    assert (
        text.render() == whole if budget >= len(whole) else len(text.head() + text.tail()) == budget
    )
