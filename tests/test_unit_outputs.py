"""`BoundedText` and `OutputCollector` called directly: no kernel, no server. Spill files are
real files under `tmp_path`, opened by the callable the test passes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TextIO

import pytest

from python_mcp_server.kernels.messages import (
    PREVIEW_KEY,
    ClearOutput,
    DisplayOutput,
    ErrorOutput,
    StatusOutput,
    StreamOutput,
    parse_iopub,
)
from python_mcp_server.services.outputs import (
    MAX_DISPLAYS_PER_CELL,
    NOTEBOOK_DISPLAY_BYTES_PER_CELL,
    BoundedText,
    OutputCollector,
)


class Spills:
    """Opens real spill files under a folder and remembers which names were asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.opened: list[str] = []

    def __call__(self, name: str) -> tuple[TextIO, str]:
        self.opened.append(name)
        path = self.folder / f"{name}.txt"
        return path.open("w", encoding="utf-8"), f"kernel://s/{name}.txt"

    def text(self, name: str) -> str:
        return (self.folder / f"{name}.txt").read_text(encoding="utf-8")


class BrokenFile:
    """A spill file whose writes fail, as on a full disk."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def spills(tmp_path: Path) -> Spills:
    return Spills(tmp_path)


def marker(omitted: int, uri: str | None = None) -> str:
    where = f"; full text: {uri}" if uri else ""
    return f"\n... [{omitted} characters omitted{where}] ...\n"


# BoundedText


def test_text_within_the_budget_is_kept_whole() -> None:
    text = BoundedText(10)
    text.append("hello")
    text.append("")
    text.append("world")
    assert (text.render(), text.total, text.truncated, text.omitted()) == (
        "helloworld",
        10,
        False,
        0,
    )


def test_text_over_the_budget_keeps_head_and_tail_around_a_marker() -> None:
    text = BoundedText(10)
    text.append("abcdefghijklmnopqrstuvwxyz")
    assert text.render() == "abcde" + marker(16) + "vwxyz"
    assert (text.total, text.truncated, text.omitted(), text.uri) == (26, True, 16, None)


def test_one_character_over_the_budget_is_truncated() -> None:
    text = BoundedText(10)
    text.append("0123456789")
    assert not text.truncated
    text.append("X")
    assert text.render() == "01234" + marker(1) + "6789X"


def test_an_odd_budget_gives_the_extra_character_to_the_tail() -> None:
    text = BoundedText(5)
    text.append("abcdefghij")
    assert text.render() == "ab" + marker(5) + "hij"


def test_many_small_pieces_keep_the_latest_tail() -> None:
    text = BoundedText(10)
    pieces = [f"{i:02d}" for i in range(100)]
    for piece in pieces:
        text.append(piece)
    full = "".join(pieces)
    assert text.render() == full[:5] + marker(len(full) - 10) + full[-5:]
    assert text.total == len(full)


def test_a_zero_budget_keeps_only_the_marker() -> None:
    text = BoundedText(0)
    text.append("abc")
    assert text.render() == marker(3)


def test_spilling_writes_the_whole_text_once_it_outgrows_the_budget(spills: Spills) -> None:
    text = BoundedText(10, lambda: spills("stdout"))
    for piece in ("abcd", "efgh", "ij"):
        text.append(piece)
    assert (spills.opened, text.uri) == ([], None)
    for piece in ("klmn", "opqrstuvwxyz"):
        text.append(piece)
    text.close()
    assert spills.opened == ["stdout"]
    assert spills.text("stdout") == "abcdefghijklmnopqrstuvwxyz"
    assert text.render() == "abcde" + marker(16, "kernel://s/stdout.txt") + "vwxyz"


def test_a_spill_file_that_cannot_be_opened_leaves_the_marker_without_a_link(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def cannot_open() -> tuple[TextIO, str]:
        raise PermissionError(13, "Permission denied")

    text = BoundedText(4, cannot_open)
    with caplog.at_level(logging.WARNING):
        text.append("abcdefgh")
    assert (text.render(), text.uri) == ("ab" + marker(4) + "gh", None)
    assert caplog.messages == [
        "could not open a file for long output: [Errno 13] Permission denied"
    ]


def test_a_spill_file_that_fails_to_write_is_closed_and_its_link_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = BrokenFile()

    def opener() -> tuple[Any, str]:
        return broken, "kernel://s/full.txt"

    text = BoundedText(4, opener)
    with caplog.at_level(logging.WARNING):
        text.append("abcdefgh")
        text.append("ijkl")
    assert broken.closed
    assert (text.render(), text.uri) == ("ab" + marker(8) + "kl", None)
    assert caplog.messages == [
        "could not write long output to its file: [Errno 28] No space left on device"
    ]


# OutputCollector: streams and results


def test_stdout_and_stderr_are_bounded_separately() -> None:
    collector = OutputCollector(10)
    collector.feed(StreamOutput("stdout", "out " * 5))
    collector.feed(StreamOutput("stderr", "err\n"))
    assert collector.stdout.render() == "out o" + marker(10) + " out "
    assert (collector.stderr.render(), collector.stderr.truncated) == ("err\n", False)


def test_a_stream_with_another_name_counts_as_stdout() -> None:
    collector = OutputCollector(100)
    collector.feed(StreamOutput("stdout", "a"))
    collector.feed(StreamOutput("other", "b"))
    assert (collector.stdout.render(), collector.stderr.render()) == ("ab", "")


def test_each_stream_chunk_is_passed_on_with_its_name() -> None:
    seen: list[tuple[str, str]] = []
    collector = OutputCollector(4, on_stream=lambda name, text: seen.append((name, text)))
    collector.feed(StreamOutput("stdout", "one\n"))
    collector.feed(StreamOutput("stderr", "two but longer than the budget\n"))
    assert seen == [("stdout", "one\n"), ("stderr", "two but longer than the budget\n")]


def test_each_stream_spills_to_its_own_file(spills: Spills) -> None:
    collector = OutputCollector(4, spill=spills)
    collector.feed(StreamOutput("stderr", "e" * 6))
    collector.feed(StreamOutput("stdout", "ok"))
    collector.feed(StreamOutput("stdout", "o" * 8))
    collector.close()
    assert spills.opened == ["stderr", "stdout"]
    assert (spills.text("stderr"), spills.text("stdout")) == ("e" * 6, "ok" + "o" * 8)
    assert collector.spill_uris() == ["kernel://s/stdout.txt", "kernel://s/stderr.txt"]


def test_nothing_spills_while_output_fits(spills: Spills) -> None:
    collector = OutputCollector(100, spill=spills)
    collector.feed(StreamOutput("stdout", "short"))
    collector.close()
    assert (spills.opened, collector.spill_uris()) == ([], [])


def test_a_plain_text_result_is_the_result_and_not_a_display() -> None:
    collector = OutputCollector(100)
    collector.feed(DisplayOutput({"text/plain": "42"}, execution_count=3, is_result=True))
    assert collector.result is not None
    assert collector.result.render() == "42"
    assert collector.displays == []


def test_a_long_result_is_bounded_and_spills_under_its_own_name(spills: Spills) -> None:
    collector = OutputCollector(6, spill=spills)
    collector.feed(DisplayOutput({"text/plain": "0123456789"}, is_result=True))
    collector.close()
    assert collector.result is not None
    assert collector.result.render() == "012" + marker(4, "kernel://s/result.txt") + "789"
    assert spills.text("result") == "0123456789"
    assert collector.spill_uris() == ["kernel://s/result.txt"]


def test_a_rich_result_is_both_the_result_and_a_display() -> None:
    collector = OutputCollector(100)
    out = DisplayOutput({"text/plain": "df", "text/html": "<table/>"}, is_result=True)
    collector.feed(out)
    assert collector.result is not None
    assert collector.result.render() == "df"
    assert collector.displays == [out]


def test_an_error_is_kept() -> None:
    collector = OutputCollector(100)
    error = ErrorOutput("ValueError", "bad", ["Traceback", "ValueError: bad"])
    collector.feed(error)
    assert collector.error == error


# OutputCollector: displays


def test_an_update_replaces_the_display_with_the_same_id() -> None:
    collector = OutputCollector(100)
    first = DisplayOutput({"text/plain": "0%"}, display_id="bar")
    other = DisplayOutput({"text/plain": "other"})
    update = DisplayOutput({"text/plain": "100%"}, display_id="bar")
    for out in (first, other, update):
        collector.feed(out)
    assert collector.displays == [update, other]


def test_displays_past_the_limit_are_counted_not_kept() -> None:
    collector = OutputCollector(100)
    outs = [DisplayOutput({"text/plain": str(i)}) for i in range(MAX_DISPLAYS_PER_CELL + 3)]
    for out in outs:
        collector.feed(out)
    assert collector.displays == outs[:MAX_DISPLAYS_PER_CELL]
    assert collector.dropped_displays == 3


def test_an_update_still_replaces_its_display_when_the_list_is_full() -> None:
    collector = OutputCollector(100)
    collector.feed(DisplayOutput({"text/plain": "first"}, display_id="d"))
    for i in range(MAX_DISPLAYS_PER_CELL):
        collector.feed(DisplayOutput({"text/plain": str(i)}))
    update = DisplayOutput({"text/plain": "updated"}, display_id="d")
    collector.feed(update)
    assert collector.displays[0] == update
    assert collector.dropped_displays == 1


def test_clear_output_forgets_the_displays_but_not_the_streams() -> None:
    collector = OutputCollector(100)
    collector.feed(StreamOutput("stdout", "kept"))
    collector.feed(DisplayOutput({"text/plain": "gone"}))
    collector.feed(ClearOutput(wait=True))
    assert (collector.displays, collector.stdout.render()) == ([], "kept")


def test_status_messages_change_nothing() -> None:
    collector = OutputCollector(100)
    collector.feed(StatusOutput("busy"))
    assert (collector.displays, collector.notebook, collector.nb_bytes) == ([], [], 0)


# OutputCollector: the notebook copy


def test_the_notebook_copy_merges_consecutive_chunks_of_one_stream() -> None:
    collector = OutputCollector(100)
    for out in (
        StreamOutput("stdout", "a\n"),
        StreamOutput("stdout", "b\n"),
        StreamOutput("stderr", "warn\n"),
        StreamOutput("stdout", "c\n"),
    ):
        collector.feed(out)
    assert collector.notebook == [
        {"output_type": "stream", "name": "stdout", "text": "a\nb\n"},
        {"output_type": "stream", "name": "stderr", "text": "warn\n"},
        {"output_type": "stream", "name": "stdout", "text": "c\n"},
    ]
    assert collector.nb_bytes == 11


def test_the_notebook_copy_of_a_long_stream_ends_with_a_truncation_note(
    spills: Spills,
) -> None:
    collector = OutputCollector(10, spill=spills)
    for piece in ("0123456", "789abcdef", "more", "and more"):
        collector.feed(StreamOutput("stdout", piece))
    collector.close()
    note = "\n... [output truncated. Full text: kernel://s/stdout.txt]\n"
    assert collector.notebook == [
        {"output_type": "stream", "name": "stdout", "text": "0123456789" + note}
    ]
    assert collector.nb_bytes == 10 + len(note)


def test_a_stream_exactly_at_the_budget_gets_its_note_on_the_next_chunk() -> None:
    collector = OutputCollector(4)
    collector.feed(StreamOutput("stdout", "abcd"))
    collector.feed(StreamOutput("stdout", "e"))
    collector.feed(StreamOutput("stdout", "f"))
    assert collector.notebook == [
        {"output_type": "stream", "name": "stdout", "text": "abcd\n... [output truncated.]\n"}
    ]


def test_the_notebook_copy_keeps_results_displays_and_errors_in_order() -> None:
    collector = OutputCollector(100)
    collector.feed(DisplayOutput({"image/png": "iVBO"}, metadata={"w": 1}))
    collector.feed(DisplayOutput({"text/plain": "7"}, execution_count=2, is_result=True))
    collector.feed(ErrorOutput("KeyError", "'x'", ["KeyError: 'x'"]))
    assert collector.notebook == [
        {"output_type": "display_data", "data": {"image/png": "iVBO"}, "metadata": {"w": 1}},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "7"},
            "metadata": {},
            "execution_count": 2,
        },
        {
            "output_type": "error",
            "ename": "KeyError",
            "evalue": "'x'",
            "traceback": ["KeyError: 'x'"],
        },
    ]
    assert collector.nb_bytes == 5 + len("'x'") + len("KeyError: 'x'")


def test_the_notebook_copy_updates_a_display_in_place() -> None:
    collector = OutputCollector(100)
    collector.feed(DisplayOutput({"text/plain": "0%"}, display_id="bar"))
    collector.feed(StreamOutput("stdout", "working\n"))
    collector.feed(DisplayOutput({"text/plain": "100%"}, display_id="bar"))
    assert collector.notebook == [
        {"output_type": "display_data", "data": {"text/plain": "100%"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "working\n"},
    ]


def test_clear_output_empties_the_notebook_copy_and_restarts_its_stream_budget() -> None:
    collector = OutputCollector(4)
    collector.feed(StreamOutput("stdout", "abcdefgh"))
    collector.feed(ClearOutput(wait=False))
    collector.feed(StreamOutput("stdout", "ijkl"))
    assert collector.notebook == [{"output_type": "stream", "name": "stdout", "text": "ijkl"}]


def test_display_data_over_the_notebook_budget_is_left_out_of_the_notebook() -> None:
    collector = OutputCollector(100)
    big = "x" * (NOTEBOOK_DISPLAY_BYTES_PER_CELL - 100)
    collector.feed(DisplayOutput({"text/html": big}))
    collector.feed(DisplayOutput({"text/html": "y" * 101}))
    collector.feed(DisplayOutput({"text/html": "z" * 5}))
    placeholder = "[display left out of the notebook: over the size budget]"
    assert [item["data"] for item in collector.notebook] == [
        {"text/html": big},
        {"text/plain": placeholder},
        {"text/html": "zzzzz"},
    ]
    assert collector.nb_bytes == len(big) + len(placeholder) + 5
    # the live displays are not affected by the notebook budget
    assert len(collector.displays) == 3


# Display data an update or clear_output replaced no longer counts toward the budgets.


def test_a_display_updated_in_place_many_times_stays_in_the_notebook() -> None:
    collector = OutputCollector(100)
    frame = "f" * (NOTEBOOK_DISPLAY_BYTES_PER_CELL // 4)
    for _ in range(5):
        collector.feed(DisplayOutput({"text/html": frame}, display_id="plot"))
    assert collector.notebook == [
        {"output_type": "display_data", "data": {"text/html": frame}, "metadata": {}}
    ]


def test_a_redrawn_figure_after_clear_output_stays_in_the_notebook() -> None:
    collector = OutputCollector(100)
    frame = "f" * (NOTEBOOK_DISPLAY_BYTES_PER_CELL // 4)
    for _ in range(5):
        collector.feed(ClearOutput(wait=True))
        collector.feed(DisplayOutput({"text/html": frame}))
    assert collector.notebook == [
        {"output_type": "display_data", "data": {"text/html": frame}, "metadata": {}}
    ]


def test_notebook_size_counts_only_what_the_notebook_holds_after_clear_output() -> None:
    collector = OutputCollector(100)
    collector.feed(StreamOutput("stdout", "x" * 50))
    collector.feed(ClearOutput(wait=False))
    collector.feed(StreamOutput("stdout", "y" * 3))
    assert collector.nb_bytes == 3


def test_a_kernel_preview_leaves_the_display_metadata_and_so_the_notebook() -> None:
    entry = {"source": "image/png", "mime_type": "image/png", "data": "AAAA"}
    msg = {
        "header": {"msg_type": "display_data"},
        "content": {
            "data": {"image/png": "iVBO"},
            "metadata": {"image/png": {"width": 10}, PREVIEW_KEY: entry},
        },
    }
    out = parse_iopub(msg)
    assert isinstance(out, DisplayOutput)
    assert (out.preview, out.metadata) == (entry, {"image/png": {"width": 10}})
    collector = OutputCollector(budget=100)
    collector.feed(out)
    assert collector.notebook[0]["metadata"] == {"image/png": {"width": 10}}
