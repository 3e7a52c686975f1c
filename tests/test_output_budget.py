"""Output past --max-output-chars keeps head and tail, and the full text is a kernel:// file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from mcp.types import ResourceLink, TextContent, TextResourceContents

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.servers import http_server

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


@pytest.fixture
def small(config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(config, max_output_chars=1000)


async def run(client: Client[Any], code: str) -> dict[str, Any]:
    res = await client.call_tool("run_python_code", {"code": code})
    assert res.structured_content is not None
    return res.structured_content


def spill_path(workspace: Path, uri: str) -> Path:
    """The file behind a kernel:// URI: in its session's one folder, `outputs/<session>/<run>/`
    (which the session's end deletes)."""
    session, name = uri.removeprefix("kernel://").split("/")
    (path,) = (workspace / "outputs" / session).glob(f"*/{name}")
    return path


async def test_long_stdout_keeps_head_and_tail_with_a_marker_naming_the_full_file(
    small: ServerConfig, workspace: Path
) -> None:
    code = "for i in range(1000):\n    print(f'line {i:04d}')"
    async with Client(create_server(small)) as client:
        data = await run(client, code)
        (uri,) = data["output_files"]
        saved = spill_path(workspace, uri).read_text()  # while the session lives
    full = "".join(f"line {i:04d}\n" for i in range(1000))
    marker = f"\n... [{len(full) - 1000} characters omitted; full text: {uri}] ...\n"
    assert data["stdout"] == full[:500] + marker + full[-500:]
    assert saved == full
    assert data["message"] == (
        f"stdout was {len(full)} characters, over the budget of 1000; the middle was left out; "
        f"the full text is in {uri}."
    )


async def test_the_full_text_is_served_as_a_kernel_resource(small: ServerConfig) -> None:
    async with Client(create_server(small)) as client:
        data = await run(client, "import sys\nsys.stderr.write('e' * 3000)")
        (uri,) = data["output_files"]
        (contents,) = await client.read_resource(uri)
    assert re.fullmatch(r"kernel://default/stderr-[0-9a-f]{8}\.txt", uri)
    assert isinstance(contents, TextResourceContents)
    assert (contents.text, contents.mime_type) == ("e" * 3000, "text/plain")
    assert len(data["stderr"]) < 1100


async def test_a_long_result_is_bounded_and_spilled(small: ServerConfig, workspace: Path) -> None:
    async with Client(create_server(small)) as client:
        res = await client.call_tool("run_python_code", {"code": "'r' * 5000"})
        data = res.structured_content
        assert data is not None
        (uri,) = data["output_files"]
        saved = spill_path(workspace, uri).read_text()
    assert data["result"].startswith("'rrrr")
    assert data["result"].endswith("rrrr'")
    assert "characters omitted" in data["result"]
    assert saved == "'" + "r" * 5000 + "'"
    assert [c.uri for c in res.content if isinstance(c, ResourceLink)] == [uri]
    assert isinstance(res.content[0], TextContent)
    assert f"full output: {uri}" in res.content[0].text


async def test_output_within_the_budget_is_untouched(small: ServerConfig, workspace: Path) -> None:
    async with Client(create_server(small)) as client:
        data = await run(client, "print('a' * 999)")
    assert (data["stdout"], data["output_files"], data["message"]) == ("a" * 999 + "\n", [], None)
    assert not (workspace / "outputs" / "default").exists()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_printing_50_mb_leaves_server_memory_flat_and_the_result_small(
    workspace: Path,
) -> None:
    code = "for _ in range(50_000):\n    print('x' * 999)"
    with http_server(workspace) as server:
        async with Client(server.url) as client:
            await run(client, "x = 1")
            before = rss_bytes(server.process.pid)
            res = await client.call_tool("run_python_code", {"code": code})
            after = rss_bytes(server.process.pid)
            data = res.structured_content
            assert data is not None
            (uri,) = data["output_files"]
            size = spill_path(workspace, uri).stat().st_size
    assert data["status"] == "ok"
    assert after - before < 100 * MB, f"server RSS grew by {(after - before) / MB:.1f} MB"
    first = res.content[0]
    assert isinstance(first, TextContent)
    assert len(first.text) < 2 * 20_000
    assert len(data["stdout"]) < 2 * 20_000
    assert size == 50_000_000


async def test_an_output_folder_turned_into_an_outward_link_is_not_written_through(
    small: ServerConfig, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    plant = (
        "import os, shutil\n"
        "shutil.rmtree('outputs/default', ignore_errors=True)\n"
        f"os.symlink({str(outside)!r}, 'outputs/default')"
    )
    async with Client(create_server(small)) as client:
        planted = await run(client, plant)
        data = await run(client, "print('x' * 5000)")
    assert planted["status"] == "ok", planted
    assert list(outside.iterdir()) == []
    assert data["status"] == "ok"
    assert not data.get("output_files")
    assert len(data["stdout"]) < 1100
