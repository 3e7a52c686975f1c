"""export_notebook: a session's executed cells as a valid .ipynb in the workspace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat as _nbformat
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services.notebooks import build_notebook
from python_mcp_server.services.records import CellRecord

pytestmark = pytest.mark.anyio

nbformat: Any = _nbformat  # untyped library

CELLS = [
    "print('hello')",
    "6 * 7",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
    "1 / 0",
]


async def test_the_exported_notebook_validates_and_holds_every_cell_with_its_outputs(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        for code in CELLS:
            await client.call_tool("run_python_code", {"code": code})
        res = await client.call_tool("export_notebook", {"path": "notebooks/work.ipynb"})
    data = res.structured_content
    assert data is not None
    assert (data["path"], data["uri"], data["cells"], data["dropped_outputs"]) == (
        "notebooks/work.ipynb",
        "workspace://notebooks/work.ipynb",
        4,
        0,
    )
    assert data["message"] == "Wrote 4 cell(s) of session 'default' to notebooks/work.ipynb."
    nb = nbformat.read(workspace / "notebooks" / "work.ipynb", as_version=4)
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == CELLS
    assert [c.execution_count for c in nb.cells] == [1, 2, 3, 4]
    assert [[o.output_type for o in c.outputs] for c in nb.cells] == [
        ["stream"],
        ["execute_result"],
        ["display_data"],
        ["error"],
    ]
    assert nb.cells[0].outputs[0].text == "hello\n"
    assert nb.cells[1].outputs[0].data["text/plain"] == "42"
    assert "image/png" in nb.cells[2].outputs[0].data
    assert nb.cells[3].outputs[0].ename == "ZeroDivisionError"
    assert nb.metadata.kernelspec.language == "python"


async def test_a_name_without_suffix_gets_ipynb(config: ServerConfig, workspace: Path) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "x = 1"})
        res = await client.call_tool("export_notebook", {"path": "record"})
    assert res.structured_content is not None
    assert res.structured_content["path"] == "record.ipynb"
    nbformat.validate(nbformat.read(workspace / "record.ipynb", as_version=4))


async def test_a_session_with_no_cells_exports_an_empty_notebook(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        res = await client.call_tool("export_notebook", {"session_id": "a", "path": "empty.ipynb"})
    assert res.structured_content is not None
    assert res.structured_content["message"] == (
        "Wrote 0 cell(s) of session 'a' to empty.ipynb. The session has run no cells yet, so "
        "the notebook is empty."
    )
    assert nbformat.read(workspace / "empty.ipynb", as_version=4).cells == []


async def test_a_path_outside_the_workspace_is_refused(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "x = 1"})
        res = await client.call_tool(
            "export_notebook", {"path": "../escape.ipynb"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "Path '../escape.ipynb' is refused: its '..' parts lead outside the workspace. Use a "
        "path relative to the workspace root, for example 'data/input.csv'."
    )
    assert not (workspace.parent / "escape.ipynb").exists()


async def test_a_path_with_another_suffix_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "x = 1"})
        res = await client.call_tool("export_notebook", {"path": "out.py"}, raise_on_error=False)
    assert res.is_error
    assert res.content[0].text == (
        "export_notebook writes a Jupyter notebook, so the path must end with .ipynb; got "
        "'out.py'. Try 'out.ipynb'."
    )


def test_outputs_that_are_not_valid_nbformat_are_left_out() -> None:
    good = {"output_type": "stream", "name": "stdout", "text": "ok\n"}
    bad = {"output_type": "stream", "text": "no stream name"}
    nb, dropped = build_notebook([CellRecord("print('ok')", 1, [good, bad], "ok")])
    nbformat.validate(nb)
    assert dropped == 1
    assert [o["text"] for o in nb.cells[0].outputs] == ["ok\n"]


async def test_exporting_over_an_existing_file_needs_overwrite(config: ServerConfig) -> None:
    target = config.workspace_root / "mine.ipynb"
    target.write_text("{}")
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "1"})
        refused = await client.call_tool(
            "export_notebook", {"path": "mine.ipynb"}, raise_on_error=False
        )
        assert target.read_text() == "{}"
        replaced = await client.call_tool(
            "export_notebook", {"path": "mine.ipynb", "overwrite": True}
        )
    assert refused.is_error
    assert refused.content[0].text.startswith("'mine.ipynb' already exists. Pass overwrite=true")
    assert replaced.structured_content is not None
    assert replaced.structured_content["cells"] == 1


def restart_mark(reason: str, kept: str = "variables from the cells above are gone") -> str:
    return (
        rf"\*— kernel restarted at \d\d:\d\d:\d\d UTC \({re.escape(reason)}\); the cells below "
        rf"ran in a new kernel; {re.escape(kept)} —\*"
    )


async def test_each_kernel_restart_is_marked_between_the_cells_of_the_two_kernels(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "a = 1"})
        await client.call_tool("restart_kernel", {})
        await client.call_tool("run_python_code", {"code": "b = 2"})
        await client.call_tool("restart_kernel", {"preserve_state": True})
        # the cell ran in the kernel it ended: it goes above the mark of the new one
        await client.call_tool("run_python_code", {"code": "import os\nos._exit(3)"})
        await client.call_tool("run_python_code", {"code": "c = 3"})
        res = await client.call_tool("export_notebook", {"path": "restarts.ipynb"})
    data = res.structured_content
    assert data is not None
    assert data["cells"] == 4
    assert data["message"] == (
        "Wrote 4 cell(s) of session 'default' to restarts.ipynb. A markdown cell marks each of "
        "the 3 kernel restart(s) between them: the cells after one ran in a new kernel."
    )
    nb = nbformat.read(workspace / "restarts.ipynb", as_version=4)
    nbformat.validate(nb)
    assert [(c.cell_type, c.source) for c in nb.cells if c.cell_type == "code"] == [
        ("code", "a = 1"),
        ("code", "b = 2"),
        ("code", "import os\nos._exit(3)"),
        ("code", "c = 3"),
    ]
    assert [c.cell_type for c in nb.cells] == [
        "code",
        "markdown",
        "code",
        "markdown",
        "code",
        "markdown",
        "code",
    ]
    marks = [c for c in nb.cells if c.cell_type == "markdown"]
    expected = [
        restart_mark("restart_kernel was called"),
        restart_mark("restart_kernel was called", "variables carried over: b"),
        restart_mark("the kernel exited with code 3 while running this cell"),
    ]
    for mark, pattern in zip(marks, expected, strict=True):
        assert re.fullmatch(pattern, mark.source), mark.source
    reasons = [m.metadata["python_mcp_server"]["kernel_restarted"]["reason"] for m in marks]
    assert reasons[0] == "restart_kernel was called"
