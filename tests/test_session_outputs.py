"""Session outputs are the session's: each session has a folder of its own, deleted when it ends
(deleted, expired, or the server stopping); its links then say so, a new session with the same
name never serves the old one's files, and all of them together stay under --max-outputs-mb,
with the result saying what was not kept."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import ImageContent, TextResourceContents

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.workspace.output_folder import OutputFolder
from tests.helpers import call

pytestmark = pytest.mark.anyio

LONG = "print('x' * 3000)"  # over the budget below: spilled to a file
GONE = (
    "Session 'a' {how}, and its outputs (the files behind its kernel:// links) were deleted with "
    "it. Run the code again in a live session to make them again."
)
NOT_KEPT = (
    "Session outputs are at this server's limit of 1 MB (--max-outputs-mb): delete sessions you "
    "no longer need (their outputs go with them), or raise --max-outputs-mb."
)
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"


@pytest.fixture
def small(config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(config, max_output_chars=1000)


async def spill(client: Client[Any], session_id: str, code: str = LONG) -> dict[str, Any]:
    return await call(client, "run_python_code", code=code, session_id=session_id)


async def read_error(client: Client[Any], uri: str) -> str:
    with pytest.raises(MCPError) as caught:
        await client.read_resource(uri)
    return str(caught.value)


def folders(workspace: Path, session_id: str) -> list[Path]:
    """The session's output folders: one while it lives."""
    base = workspace / "outputs" / session_id
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


async def test_deleting_a_session_deletes_its_outputs_and_its_links_say_so(
    small: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(small)) as client:
        await call(client, "create_session", session_id="a")
        (uri,) = (await spill(client, "a"))["output_files"]
        (folder,) = folders(workspace, "a")
        (contents,) = await client.read_resource(uri)
        await call(client, "delete_session", session_id="a")
        message = await read_error(client, uri)
        left = folder.exists()
    assert isinstance(contents, TextResourceContents)
    assert contents.text == "x" * 3000 + "\n"
    assert not left
    assert not (workspace / "outputs" / "a").exists()
    assert message == GONE.format(how="was deleted (delete_session)")


async def test_a_new_session_with_a_deleted_sessions_name_does_not_serve_its_files(
    small: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(small)) as client:
        await call(client, "create_session", session_id="a")
        (old,) = (await spill(client, "a"))["output_files"]
        await call(client, "delete_session", session_id="a")
        await call(client, "create_session", session_id="a")
        message = await read_error(client, old)
        (new,) = (await spill(client, "a", "print('y' * 3000)"))["output_files"]
        (contents,) = await client.read_resource(new)
    name = old.removeprefix("kernel://a/")
    assert message == (
        f"No file {name!r} among the outputs of session 'a'. An earlier session named 'a' ended, "
        "and its outputs were deleted with it; a link from that session no longer works. Use a "
        "kernel:// URI exactly as a run_python_code result gave it; files are listed in its "
        "images, displays and output_files."
    )
    assert isinstance(contents, TextResourceContents)
    assert contents.text == "y" * 3000 + "\n"


async def test_an_expired_sessions_outputs_are_deleted(
    small: ServerConfig, workspace: Path
) -> None:
    quick = dataclasses.replace(small, session_idle_timeout_s=3, health_check_interval_s=0.2)
    async with Client(create_server(quick)) as client:
        await call(client, "create_session", session_id="a")
        (uri,) = (await spill(client, "a"))["output_files"]
        assert folders(workspace, "a")
        with anyio.fail_after(20):
            while folders(workspace, "a"):
                await anyio.sleep(0.05)
        message = await read_error(client, uri)
    assert message == GONE.format(how="expired after 3 s without use")


async def test_the_sessions_outputs_are_deleted_when_the_server_stops(
    small: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(small)) as client:
        await spill(client, "default")
        assert folders(workspace, "default")
    assert folders(workspace, "default") == []


async def test_past_the_bound_a_long_output_is_not_kept_and_the_result_says_why(
    small: ServerConfig, workspace: Path
) -> None:
    bounded = dataclasses.replace(small, max_outputs_mb=1)
    big = "print('x' * 600_000)"
    async with Client(create_server(bounded)) as client:
        for sid in ("a", "b"):
            await call(client, "create_session", session_id=sid)
        kept = await spill(client, "a", big)
        lost = await spill(client, "b", big)
        left_in_b = [p.name for f in folders(workspace, "b") for p in f.iterdir()]
        await call(client, "delete_session", session_id="a")
        again = await spill(client, "b", big)
    assert len(kept["output_files"]) == 1
    assert lost["output_files"] == []
    assert lost["stdout"].startswith("x" * 500)
    assert lost["message"] == (
        "stdout was 600001 characters, over the budget of 1000; the middle was left out. Its full "
        f"text was not kept. {NOT_KEPT}"
    )
    assert left_in_b == []  # the partial file is gone too
    assert len(again["output_files"]) == 1  # deleting a session made room


async def test_past_the_bound_an_image_keeps_its_preview_and_the_result_says_why(
    small: ServerConfig,
) -> None:
    bounded = dataclasses.replace(small, max_outputs_mb=1)
    async with Client(create_server(bounded)) as client:
        await spill(client, "default", "print('x' * 1_048_000)")  # all but 575 bytes of it
        res = await client.call_tool("run_python_code", {"code": PLOT})
    data = res.structured_content
    assert data is not None
    (image,) = data["images"]
    assert image["uri"] is None
    assert image["preview_bytes"] > 0
    assert [type(c) for c in res.content if isinstance(c, ImageContent)] == [ImageContent]
    assert data["message"] == (
        "1 display file(s) (full-size images, plotly pages, long displays) were not kept and have "
        f"no kernel:// link. {NOT_KEPT}"
    )


async def test_a_sessions_folder_goes_but_files_the_kernel_wrote_beside_it_stay(
    small: ServerConfig, workspace: Path
) -> None:
    """The user's own files under outputs/ (here written by the kernel, as its uid when
    sandboxed, before the session's first spill) are not the session's outputs."""
    code = "import os\nos.makedirs('outputs/a', exist_ok=True)\nopen('outputs/a/mine.txt', 'w').write('kept')"
    async with Client(create_server(small)) as client:
        await call(client, "create_session", session_id="a")
        await spill(client, "a", code)
        await spill(client, "a")
        (folder,) = folders(workspace, "a")
        await call(client, "delete_session", session_id="a")
    assert not folder.exists()
    assert (workspace / "outputs" / "a" / "mine.txt").read_text() == "kept"


def test_an_output_folder_with_a_read_only_folder_inside_is_removed(tmp_path: Path) -> None:
    folder = OutputFolder(tmp_path, "outputs", "s", "run")
    with folder.create("a.txt") as f:
        f.write(b"a")
    locked = folder.path / "locked"
    (locked / "deeper").mkdir(parents=True)
    (locked / "deeper" / "b.txt").write_text("b")
    (locked / "deeper").chmod(stat.S_IRUSR | stat.S_IXUSR)
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    folder.remove()
    assert not (tmp_path / "outputs" / "s").exists()
    assert (tmp_path / "outputs").is_dir()


def test_an_output_folder_is_never_made_through_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "workspace"
    (root / "outputs").mkdir(parents=True)
    os.symlink(elsewhere, root / "outputs" / "s")
    folder = OutputFolder(root, "outputs", "s", "run")
    with pytest.raises(OSError, match=r"Not a directory|Too many levels"):
        folder.create("a.txt")
    folder.remove()
    assert list(elsewhere.iterdir()) == []
    assert (root / "outputs" / "s").is_symlink()
