"""code_completion, inspect_object and list_variables against real kernels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

pytestmark = pytest.mark.anyio


def data(res: Any) -> dict[str, Any]:
    assert not res.is_error, res.content[0].text
    assert isinstance(res.structured_content, dict)
    return res.structured_content


async def test_completion_lists_matches_with_their_range_and_types(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool(
            "run_python_code", {"code": "def alpha_fn(a, b=2):\n    return a\nalpha_value = 1"}
        )
        res = data(await client.call_tool("code_completion", {"code": "x = alpha_"}))
    assert (res["cursor_start"], res["cursor_end"], res["truncated"]) == (4, 10, False)
    by_text = {m["text"]: m for m in res["matches"]}
    assert by_text["alpha_fn"] == {"text": "alpha_fn", "type": "function", "signature": "(a, b=2)"}
    # IPython types matches until its budget (Completer.jedi_compute_type_timeout, 0.4 s) runs
    # out and marks the rest '<unknown>', which we report as None: a cold kernel on a busy
    # machine spends the budget on the first match, a warm one types them all.
    assert by_text["alpha_value"]["signature"] is None
    assert by_text["alpha_value"]["type"] in ("instance", None)


async def test_completion_at_a_cursor_inside_the_code_completes_that_name(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "import collections"})
        res = data(
            await client.call_tool(
                "code_completion", {"code": "collections.Orde + 1", "cursor_pos": 16}
            )
        )
    assert [m["text"] for m in res["matches"]] == ["OrderedDict"]
    assert (res["cursor_start"], res["cursor_end"]) == (12, 16)


async def test_completion_with_a_cursor_past_the_end_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "code_completion", {"code": "abc", "cursor_pos": 4}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "cursor_pos 4 is outside the code, which is 3 characters long. Use a value from 0 to 3, "
        "or omit it to mean the end of the code."
    )


async def test_inspection_with_a_negative_cursor_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "inspect_object", {"code": "len", "cursor_pos": -1}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text.startswith("cursor_pos -1 is outside the code")


async def test_inspection_gives_signature_and_docstring_as_plain_text(
    config: ServerConfig,
) -> None:
    code = 'def scale(values, factor=2.0):\n    """Multiply every value by factor."""\n'
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": code})
        res = data(await client.call_tool("inspect_object", {"code": "scale"}))
    assert (res["found"], res["name"], res["type"]) == (True, "scale", "function")
    assert res["signature"] == "scale(values, factor=2.0)"
    assert res["docstring"] == "Multiply every value by factor."
    assert res["source"] is None
    assert "\x1b[" not in res["text"]


async def test_inspection_at_detail_level_1_includes_the_source(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "def twice(x):\n    return 2 * x\n"})
        res = data(
            await client.call_tool(
                "inspect_object", {"code": "twice(", "cursor_pos": 2, "detail_level": 1}
            )
        )
    assert res["name"] == "twice"
    assert res["source"] == "def twice(x):\n    return 2 * x"
    assert "\x1b[" not in res["text"]


async def test_inspecting_an_unknown_name_says_nothing_was_found(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = data(await client.call_tool("inspect_object", {"code": "no_such_name"}))
    assert (res["found"], res["signature"], res["text"]) == (False, None, "")
    assert res["message"] == (
        "No object found at cursor_pos 12. Put the cursor on or just after a name that exists in "
        "the session, for example code='np.mean' after importing numpy as np."
    )


SETUP = """\
import numpy as np, pandas as pd, os
count = 3
name = "x" * 500
items = [1, 2, 3]
table = {"a": 1}
tags = {"red", "blue"}
grid = np.zeros((2, 3), dtype=np.int32)
frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": [3.0, 4.0]})
column = frame["a"]
_private = 1
def area(w, h=1):
    return w * h
class Box:
    pass
"""


async def test_variables_come_with_type_bounded_repr_and_size_or_shape(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": SETUP})
        res = data(await client.call_tool("list_variables", {}))
    rows = {v["name"]: v for v in res["variables"]}
    assert sorted(rows) == [
        "Box",
        "area",
        "column",
        "count",
        "frame",
        "grid",
        "items",
        "name",
        "table",
        "tags",
    ]
    assert (res["total"], res["truncated"], res["message"]) == (10, False, None)
    assert rows["count"] == {
        "name": "count",
        "type": "int",
        "repr": "3",
        "size": None,
        "shape": None,
        "dtype": None,
    }
    assert rows["items"] == {
        "name": "items",
        "type": "list",
        "repr": "[1, 2, 3]",
        "size": 3,
        "shape": None,
        "dtype": None,
    }
    assert (rows["table"]["size"], rows["tags"]["size"]) == (1, 2)
    assert (len(rows["name"]["repr"]), rows["name"]["size"]) == (200, 500)
    assert (rows["grid"]["type"], rows["grid"]["shape"], rows["grid"]["dtype"]) == (
        "numpy.ndarray",
        [2, 3],
        "int32",
    )
    assert (rows["frame"]["shape"], rows["frame"]["dtype"], rows["frame"]["size"]) == (
        [2, 3],
        "float64(2), int64(1)",
        2,
    )
    assert (rows["column"]["shape"], rows["column"]["dtype"]) == ([2], "int64")
    assert (rows["area"]["type"], rows["area"]["repr"]) == ("function", "area(w, h=1)")
    assert (rows["Box"]["type"], rows["Box"]["repr"]) == ("type", "class Box()")


async def test_a_huge_number_of_variables_is_cut_with_a_note(config: ServerConfig) -> None:
    async with Client(create_server(replace(config, max_list_entries=5))) as client:
        await client.call_tool(
            "run_python_code", {"code": "for i in range(40):\n    globals()[f'v{i:02}'] = i"}
        )
        res = data(await client.call_tool("list_variables", {}))
    assert [v["name"] for v in res["variables"]] == ["i", "v00", "v01", "v02", "v03"]
    assert (res["total"], res["truncated"]) == (41, True)
    assert res["message"] == "Only the first 5 of 41 variables (by name) are listed."


async def test_introspection_leaves_no_trace_in_the_session(config: ServerConfig) -> None:
    noisy = (
        "class Noisy:\n"
        "    def __repr__(self):\n"
        "        print('LEAK')\n"
        "        return 'Noisy!'\n"
        "noisy = Noisy()\n"
        "second = 2\n"
        "second"
    )
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "first = 1\nfirst"})
        await client.call_tool("run_python_code", {"code": noisy})
        variables = data(await client.call_tool("list_variables", {}))
        await client.call_tool("code_completion", {"code": "sec"})
        await client.call_tool("inspect_object", {"code": "noisy"})
        after = data(
            await client.call_tool(
                "run_python_code", {"code": "print(_, __, sorted(Out), len(In), _i.count('\\n'))"}
            )
        )
    assert {v["name"]: v["repr"] for v in variables["variables"]}["noisy"] == "Noisy!"
    assert (after["execution_count"], after["stdout"]) == (3, "2 1 [1, 2] 4 6\n")


async def test_introspecting_an_unknown_session_names_the_fix(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("list_variables", {"session_id": "nope"}, raise_on_error=False)
    assert res.is_error
    assert res.content[0].text == (
        "No session 'nope'. Call list_sessions to see live sessions, or create_session to "
        "start one."
    )
