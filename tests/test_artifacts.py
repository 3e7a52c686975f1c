"""The files a cell writes are listed (only that cell's), and kernel:// serves session outputs."""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import BlobResourceContents, TextResourceContents

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

pytestmark = pytest.mark.anyio


async def run(client: Client[Any], code: str) -> dict[str, Any]:
    res = await client.call_tool("run_python_code", {"code": code})
    assert res.structured_content is not None
    return res.structured_content


def listed(data: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(f["path"], f["uri"], f["size"], f["mime_type"]) for f in data["files"]]


async def test_files_a_cell_writes_are_listed_with_uri_size_and_type(
    config: ServerConfig,
) -> None:
    code = (
        "import os, pandas as pd\n"
        "os.makedirs('data', exist_ok=True)\n"
        "pd.DataFrame({'a': [1, 2]}).to_csv('data/table.csv', index=False)\n"
        "with open('notes.txt', 'w') as f:\n"
        "    f.write('hello')\n"
        "open('data/table.csv').read()\n"
    )
    async with Client(create_server(config)) as client:
        data = await run(client, code)
    assert listed(data) == [
        ("data/table.csv", "workspace://data/table.csv", 6, "text/csv"),
        ("notes.txt", "workspace://notes.txt", 5, "text/plain"),
    ]


async def test_only_the_files_of_this_cell_are_listed(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await run(client, "open('first.txt', 'w').write('1')")
        second = await run(client, "open('second.txt', 'w').write('22')")
        reading = await run(client, "open('first.txt').read() + open('second.txt').read()")
    assert listed(second) == [("second.txt", "workspace://second.txt", 2, "text/plain")]
    assert reading["files"] == []


async def test_renames_appends_copies_and_numpy_saves_are_listed(config: ServerConfig) -> None:
    code = (
        "import os, shutil, numpy as np\n"
        "os.replace('a.txt', 'b.txt')\n"
        "open('log.txt', 'a').write('more')\n"
        "shutil.copy('b.txt', 'c.txt')\n"
        "np.save('arr.npy', np.zeros(4))\n"
    )
    async with Client(create_server(config)) as client:
        await run(client, "open('a.txt', 'w').write('a'); open('log.txt', 'w').write('x')")
        data = await run(client, code)
    assert [f["path"] for f in data["files"]] == ["arr.npy", "b.txt", "c.txt", "log.txt"]


async def test_files_outside_the_workspace_are_not_listed(config: ServerConfig) -> None:
    # the kernel's temporary folder: outside the workspace, and writable sandboxed or not
    code = (
        "import os, tempfile\n"
        "fd, outside = tempfile.mkstemp()\n"
        "os.write(fd, b'x'); os.close(fd)\n"
        "open('in.txt', 'w')\n"
        "written = os.path.getsize(outside)\n"
        "os.remove(outside)\n"
        "(os.path.isabs(outside), written)"
    )
    async with Client(create_server(config)) as client:
        data = await run(client, code)
    assert data["result"] == "(True, 1)"
    assert [f["path"] for f in data["files"]] == ["in.txt"]


async def test_files_written_before_an_exception_are_still_listed(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        data = await run(client, "open('partial.txt', 'w').write('p')\n1 / 0")
        after = await run(client, "2 + 2")
    assert data["status"] == "error"
    assert [f["path"] for f in data["files"]] == ["partial.txt"]
    assert after["files"] == []


async def test_files_written_before_a_timeout_interrupt_are_listed(config: ServerConfig) -> None:
    code = "open('slow.txt', 'w').write('s')\nimport time\ntime.sleep(30)"
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": code, "timeout_s": 1})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("timeout", True)
    assert [f["path"] for f in data["files"]] == ["slow.txt"]


async def test_many_existing_files_do_not_appear_in_the_result(
    config: ServerConfig, workspace: Path
) -> None:
    for i in range(2000):
        (workspace / f"old-{i}.txt").write_text("old")
    async with Client(create_server(config)) as client:
        data = await run(client, "open('new.txt', 'w').write('n')")
    assert [f["path"] for f in data["files"]] == ["new.txt"]


async def test_the_tracking_hook_leaves_no_trace_in_the_user_namespace(
    config: ServerConfig,
) -> None:
    code = "sorted(k for k in globals() if 'pmcp' in k or not k.startswith('_'))"
    async with Client(create_server(config)) as client:
        first = await run(client, code)
        second = await run(client, "len(In), _i1[:6]")
        variables = await client.call_tool("list_variables", {})
    assert first["execution_count"] == 1
    assert first["result"] == "['In', 'Out', 'exit', 'get_ipython', 'open', 'quit']"
    assert (second["execution_count"], second["result"]) == (2, "(3, 'sorted')")
    assert variables.structured_content is not None
    assert variables.structured_content["variables"] == []


async def test_a_missing_kernel_file_is_a_clear_resource_error(
    config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(create_server(config)) as client:
        await run(client, "1")
        with caplog.at_level(logging.INFO), pytest.raises(MCPError) as err:
            await client.read_resource("kernel://default/nothing.png")
    # the client's mistake is not the server's: no traceback in the log
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]
    assert str(err.value) == (
        "No file 'nothing.png' among the outputs of session 'default'. Use a kernel:// URI "
        "exactly as a run_python_code result gave it; files are listed in its images, displays "
        "and output_files."
    )


@pytest.mark.parametrize(
    ("name", "shown"), [(".hidden", ".hidden"), ("a%2Fb", "a/b"), ("a%5Cb", "a\\b")]
)
async def test_a_kernel_file_name_that_could_leave_the_folder_is_refused(
    config: ServerConfig, workspace: Path, name: str, shown: str
) -> None:
    (workspace / "outputs" / "default").mkdir(parents=True)
    (workspace / "outputs" / "secret.txt").write_text("secret")
    async with Client(create_server(config)) as client:
        with pytest.raises(MCPError) as err:
            await client.read_resource(f"kernel://default/{name}")
    assert str(err.value) == (
        f"File name {shown!r} is not valid in a kernel:// URI: it may hold letters, digits, '_', "
        "'-' and '.' (no '/' or '\\'), starting with a letter or digit. Use the URI exactly as a "
        "run_python_code result gave it."
    )


async def test_a_png_output_is_served_as_a_blob_with_its_mime_type(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        data = await run(client, "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()")
        (contents,) = await client.read_resource(data["images"][0]["uri"])
    assert isinstance(contents, BlobResourceContents)
    assert contents.mime_type == "image/png"
    assert base64.b64decode(contents.blob).startswith(b"\x89PNG")


async def test_a_file_with_spaces_and_accents_gets_a_uri_that_reads_back(
    config: ServerConfig,
) -> None:
    code = "open('résumé 📄.txt', 'w').write('hello')"
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": code})
        assert res.structured_content is not None
        uri = res.structured_content["files"][0]["uri"]
        contents = await client.read_resource(uri)
    assert uri == "workspace://r%C3%A9sum%C3%A9%20%F0%9F%93%84.txt"
    assert isinstance(contents[0], TextResourceContents)
    assert contents[0].text == "hello"


async def test_a_symlink_in_an_output_folder_cannot_reach_outside_the_workspace(
    config: ServerConfig, tmp_path: Path, workspace: Path
) -> None:
    """Where a kernel can write its session's output folder (unsandboxed), a link it plants
    there is still not followed out of the workspace."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    small = dataclasses.replace(config, max_output_chars=200)
    async with Client(create_server(small)) as client:
        res = await client.call_tool("run_python_code", {"code": "print('x' * 300)"})
        assert res.structured_content is not None
        (uri,) = res.structured_content["output_files"]
        (folder,) = (workspace / "outputs" / "default").iterdir()
        (folder / "leak.txt").symlink_to(secret)
        with pytest.raises(MCPError) as caught:
            await client.read_resource("kernel://default/leak.txt")
    assert uri.startswith("kernel://default/stdout-")
    assert "symlink" in str(caught.value)
    assert "top secret" not in str(caught.value)


async def test_a_session_file_over_the_resource_cap_points_to_read_file(
    config: ServerConfig,
) -> None:
    small = dataclasses.replace(config, max_resource_bytes=10, max_output_chars=200)
    async with Client(create_server(small)) as client:
        res = await client.call_tool("run_python_code", {"code": "print('x' * 300)"})
        assert res.structured_content is not None
        (uri,) = res.structured_content["output_files"]
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
    name = uri.removeprefix("kernel://default/")
    assert re.search(
        rf"Read it in pieces with read_file\('outputs/default/[0-9-]+-[0-9a-f]{{6}}/{name}', "
        r"offset=\.\.\.\)\.",
        str(caught.value),
    ), str(caught.value)


async def test_writing_more_files_than_the_list_holds_says_how_many_more(
    config: ServerConfig,
) -> None:
    code = "import os\nos.makedirs('many', exist_ok=True)\nfor i in range(250):\n    open(f'many/{i}.txt', 'w').close()"
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": code})
    data = res.structured_content
    assert data is not None
    assert len(data["files"]) == 200
    assert data["message"] == (
        "The code wrote 50 more workspace file(s) than the 200 listed in files; call list_files "
        "to see them all."
    )
