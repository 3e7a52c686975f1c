"""`parse_iopub` and `strip_ansi` on hand-written iopub messages: no kernel."""

from __future__ import annotations

from typing import Any

import pytest

from python_mcp_server.kernels.messages import (
    ClearOutput,
    DisplayOutput,
    ErrorOutput,
    StatusOutput,
    StreamOutput,
    parse_iopub,
    strip_ansi,
)


def message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"header": {"msg_type": msg_type}, "msg_type": msg_type, "content": content}


def test_a_stream_message_is_a_stream_output() -> None:
    msg = message("stream", {"name": "stderr", "text": "oops\n"})
    assert parse_iopub(msg) == StreamOutput(name="stderr", text="oops\n")


def test_a_stream_without_a_name_is_stdout() -> None:
    assert parse_iopub(message("stream", {})) == StreamOutput(name="stdout", text="")


def test_display_data_keeps_data_metadata_and_the_display_id() -> None:
    msg = message(
        "display_data",
        {
            "data": {"text/plain": "<Figure>", "image/png": "iVBO"},
            "metadata": {"image/png": {"width": 640}},
            "transient": {"display_id": "abc"},
        },
    )
    assert parse_iopub(msg) == DisplayOutput(
        data={"text/plain": "<Figure>", "image/png": "iVBO"},
        metadata={"image/png": {"width": 640}},
        display_id="abc",
    )


def test_update_display_data_is_a_display_with_its_id() -> None:
    msg = message(
        "update_display_data", {"data": {"text/plain": "50%"}, "transient": {"display_id": "p"}}
    )
    assert parse_iopub(msg) == DisplayOutput(data={"text/plain": "50%"}, display_id="p")


def test_display_data_without_transient_has_no_id() -> None:
    msg = message("display_data", {"data": {"text/plain": "x"}, "transient": None})
    assert parse_iopub(msg) == DisplayOutput(data={"text/plain": "x"})


def test_execute_result_is_a_result_with_its_count() -> None:
    msg = message("execute_result", {"data": {"text/plain": "42"}, "execution_count": 7})
    assert parse_iopub(msg) == DisplayOutput(
        data={"text/plain": "42"}, execution_count=7, is_result=True
    )


def test_the_parsed_data_is_a_copy_of_the_message_data() -> None:
    data = {"text/plain": "1"}
    out = parse_iopub(message("display_data", {"data": data}))
    assert isinstance(out, DisplayOutput)
    data["text/plain"] = "changed"
    assert out.data == {"text/plain": "1"}


def test_an_error_has_its_traceback_without_terminal_colours() -> None:
    msg = message(
        "error",
        {
            "ename": "ZeroDivisionError",
            "evalue": "division by zero",
            "traceback": [
                "\x1b[0;31m---------------------------------\x1b[0m",
                "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
            ],
        },
    )
    assert parse_iopub(msg) == ErrorOutput(
        ename="ZeroDivisionError",
        evalue="division by zero",
        traceback=["---------------------------------", "ZeroDivisionError: division by zero"],
    )


def test_clear_output_and_status_are_parsed() -> None:
    assert parse_iopub(message("clear_output", {"wait": True})) == ClearOutput(wait=True)
    assert parse_iopub(message("clear_output", {})) == ClearOutput(wait=False)
    assert parse_iopub(message("status", {"execution_state": "idle"})) == StatusOutput("idle")


def test_the_top_level_msg_type_is_used_when_the_header_has_none() -> None:
    msg = {"msg_type": "stream", "content": {"name": "stdout", "text": "hi"}}
    assert parse_iopub(msg) == StreamOutput(name="stdout", text="hi")


@pytest.mark.parametrize(
    "msg",
    [
        message("execute_input", {"code": "1", "execution_count": 1}),
        message("comm_open", {}),
        {"header": {}, "content": {}},
        {},
    ],
)
def test_messages_we_do_not_surface_are_none(msg: dict[str, Any]) -> None:
    assert parse_iopub(msg) is None


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("\x1b[1;32mgreen\x1b[0m", "green"),
        ("\x1b[38;5;208morange\x1b[39m", "orange"),
        ("\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"),
        ("\x1b]0;title\x07text", "text"),
        ("\x1b]8;;https://example.com\x07link\x1b]8;;\x07", "link"),
        ("a\x1b[2Kb\x1b[1Ac", "abc"),
        ("\x1bMup", "up"),
        ("plain [1m not an escape", "plain [1m not an escape"),
    ],
)
def test_strip_ansi_removes_colour_cursor_and_title_codes(text: str, plain: str) -> None:
    assert strip_ansi(text) == plain
