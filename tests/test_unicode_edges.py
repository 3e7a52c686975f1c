"""Text that JSON allows but UTF-8 does not (unpaired surrogates), and empty code: clear answers,
no hang, no lost output."""

from __future__ import annotations

import os

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.helpers import call, error

pytestmark = pytest.mark.anyio

LONE = "\udfff"


async def test_code_with_an_unpaired_surrogate_is_refused_at_once_naming_where(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "run_python_code", code="kept = 41")
        message = await error(client, "run_python_code", code=f"x = 1\n# {LONE}", timeout_s=30)
        after = await call(client, "run_python_code", code="kept + 1")
    assert message == (
        "The code contains an unpaired surrogate character (U+DFFF) at line 2, column 3: it is "
        "not valid Unicode and cannot be encoded as UTF-8. Remove it, or write it as the escape "
        "'\\udfff' inside a string literal."
    )
    assert after["result"] == "42"


async def test_completion_and_files_refuse_it_too(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        completion = await error(client, "code_completion", code=f"pri{LONE}")
        written = await error(client, "write_file", path="a.txt", content=f"a{LONE}")
        script = await error(client, "save_script", name="s.py", code=f"print('{LONE}')")
    assert completion.startswith("The code contains an unpaired surrogate character (U+DFFF)")
    assert written.startswith("The content contains an unpaired surrogate character (U+DFFF)")
    assert script.startswith("The content contains an unpaired surrogate character (U+DFFF)")
    assert not (config.workspace_root / "a.txt").exists()


async def test_output_with_an_unpaired_surrogate_keeps_everything_around_it(
    config: ServerConfig,
) -> None:
    code = (
        "print('before')\n"
        "print('bad:' + chr(0xD800))\n"
        "print('after')\n"
        "raise ValueError('boom ' + chr(0xDC00))"
    )
    async with Client(create_server(config)) as client:
        data = await call(client, "run_python_code", code=code, timeout_s=30)
        after = await call(client, "run_python_code", code="1 + 1")
    assert data["status"] == "error"
    assert data["stdout"] == "before\nbad:\\ud800\nafter\n"
    assert data["error"]["ename"] == "ValueError"
    assert data["error"]["evalue"] == "boom \\udc00"
    assert after["result"] == "2"


async def test_an_undecodable_file_name_printed_keeps_everything_around_it(
    config: ServerConfig,
) -> None:
    # os.listdir gives U+DC80-U+DCFF for bytes that are not UTF-8; jupyter_client packs those as
    # raw bytes, which are not UTF-8 either
    (config.workspace_root / "x").mkdir()
    (config.workspace_root / "x").joinpath(os.fsdecode(b"caf\xe9.txt")).write_text("")
    code = "import os\nprint('before')\nprint(os.listdir('x')[0])\nprint('after')\nos.listdir('x')"
    async with Client(create_server(config)) as client:
        data = await call(client, "run_python_code", code=code)
    assert data["stdout"] == "before\ncaf\\udce9.txt\nafter\n"
    assert data["result"] == "['caf\\udce9.txt']"


async def test_a_file_name_that_is_not_utf8_is_listed_and_reported_escaped(
    config: ServerConfig,
) -> None:
    code = "open(b'caf\\xe9.txt', 'w').close()\nprint('hello')"
    async with Client(create_server(config)) as client:
        made = await call(client, "run_python_code", code=code)
        listed = await call(client, "list_files")
    assert made["stdout"] == "hello\n"
    (changed,) = made["files"]
    assert changed["path"] == "caf\\udce9.txt"
    assert changed["uri"] == "workspace://caf%E9.txt"
    (entry,) = [entry for entry in listed["entries"] if entry["path"].startswith("caf")]
    assert entry["path"] == "caf\\udce9.txt"


@pytest.mark.parametrize("code", ["", "   \n\t"])
async def test_empty_code_is_refused(config: ServerConfig, code: str) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "run_python_code", code=code)
    assert message == "The code is empty; pass the Python source to run."
