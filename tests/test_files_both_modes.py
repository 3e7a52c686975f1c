"""The file tools, scripts, workspace:// resources, notebook export and preserve-state restarts,
the same cases with kernels on this machine and with kernels on a Jupyter Kernel Gateway.

With a gateway the workspace is the kernels' folder (the gateway's working folder here), and the
server's own `workspace_dir` is another, empty folder: each case checks that what it wrote is
where the kernels are, and that nothing was read from or written to the server's folder. The
results and error messages must be the same in both modes, word for word.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import BlobResourceContents, TextResourceContents

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import (
    FileTooLargeError,
    NotADirectoryError_,
    NotAFileError,
    PathOutsideWorkspaceError,
    ScriptNotFoundError,
    WorkspaceFileExistsError,
    WorkspaceFileNotFoundError,
)
from python_mcp_server.server import create_server
from python_mcp_server.workspace.paths import RULE_ABSOLUTE, RULE_PARENT, RULE_SYMLINK
from python_mcp_server.workspace.shaping import READ_HINT, is_a_folder, parents_blocked
from tests.gateway import KernelGateway
from tests.helpers import call, error

pytestmark = pytest.mark.anyio


@dataclass
class Where:
    """One mode: its config, the folder the kernels (and the file tools) see as the workspace,
    and the server's own workspace folder."""

    mode: str
    config: ServerConfig
    root: Path
    server_dir: Path
    gateway: KernelGateway | None = None

    def server(self, **changes: Any) -> Client[Any]:
        return Client(create_server(dataclasses.replace(self.config, **changes)))

    def check_server_disk_untouched(self) -> None:
        """With a gateway, nothing of the workspace lands on the server's disk: its folder holds
        at most the (emptied) folder of its own kernel:// outputs."""
        if self.gateway is None:
            return
        assert {p.name for p in self.server_dir.iterdir()} <= {"outputs"}
        assert [p for p in self.server_dir.rglob("*") if not p.is_dir()] == []


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@pytest.fixture(params=["local", pytest.param("gateway", marks=pytest.mark.gateway)])
def where(request: pytest.FixtureRequest, config: ServerConfig, workspace: Path) -> Where:
    if request.param == "local":
        return Where("local", config, workspace.resolve(), workspace.resolve())
    gateway: KernelGateway = request.getfixturevalue("kernel_gateway")
    _empty(gateway.root_dir)
    remote = dataclasses.replace(
        config,
        kernel_gateway_url=gateway.url,
        kernel_gateway_token=gateway.token,
        sandbox="off",  # the gateway's kernels are its to contain
    )
    return Where("gateway", remote, gateway.root_dir.resolve(), workspace.resolve(), gateway)


@asynccontextmanager
async def serving(where: Where, **changes: Any) -> AsyncIterator[Client[Any]]:
    async with where.server(**changes) as client:
        yield client
    where.check_server_disk_untouched()


def refused(path: str, rule: str) -> str:
    return str(PathOutsideWorkspaceError(path, rule))


# ------------------------------------------------------------------------------ files


async def test_text_is_written_read_listed_and_deleted_where_the_kernels_are(
    where: Where,
) -> None:
    async with serving(where) as client:
        written = await call(client, "write_file", path="notes/hello.txt", content="héllo\n")
        read = await call(client, "read_file", path="notes/hello.txt")
        listed = await call(client, "list_files", path="notes")
        assert (where.root / "notes" / "hello.txt").read_text() == "héllo\n"
        deleted = await call(client, "delete_file", path="notes/hello.txt")
        assert not (where.root / "notes" / "hello.txt").exists()
        info = await call(client, "get_workspace_info")
    assert written == {
        "path": "notes/hello.txt",
        "bytes_written": 7,
        "created": True,
        "uri": "workspace://notes/hello.txt",
    }
    assert read["content"] == "héllo\n"
    assert read["encoding"] == "utf-8"
    assert read["total_size"] == 7
    assert [(e["path"], e["type"], e["size"]) for e in listed["entries"]] == [
        ("notes/hello.txt", "file", 7)
    ]
    assert listed["tree"] == "notes/\n  hello.txt  (7 B)"
    assert deleted == {
        "path": "notes/hello.txt",
        "type": "file",
        "message": "Deleted 'notes/hello.txt'.",
    }
    assert info["root"] == str(where.root)
    assert info["subfolders"] == ["notes", "outputs", "scripts", "uploads"]
    assert (info["file_count"], info["folder_count"]) == (0, 4)


async def test_binary_data_makes_the_round_trip_as_base64(where: Where) -> None:
    blob = bytes(range(256)) * 3
    async with serving(where) as client:
        await call(
            client,
            "write_file",
            path="data/blob.bin",
            content=base64.b64encode(blob).decode(),
            encoding="base64",
        )
        read = await call(client, "read_file", path="data/blob.bin")
        appended = await call(
            client,
            "write_file",
            path="data/blob.bin",
            content=base64.b64encode(b"\x00end").decode(),
            encoding="base64",
            append=True,
        )
    assert read["encoding"] == "base64"
    assert base64.b64decode(read["content"]) == blob
    assert appended["created"] is False
    assert (where.root / "data" / "blob.bin").read_bytes() == blob + b"\x00end"


async def test_paths_that_leave_the_workspace_are_refused_alike(where: Where) -> None:
    async with serving(where) as client:
        parent = await error(client, "read_file", path="../x")
        absolute = await error(client, "read_file", path="/etc/passwd")
        written = await error(client, "write_file", path="a/../../x.txt", content="x")
        listed = await error(client, "list_files", path="..")
    assert parent == refused("../x", RULE_PARENT)
    assert absolute == refused("/etc/passwd", RULE_ABSOLUTE)
    assert written == refused("a/../../x.txt", RULE_PARENT)
    assert listed == refused("..", RULE_PARENT)
    assert not (where.root.parent / "x.txt").exists()


async def test_an_absolute_path_inside_the_kernels_workspace_is_accepted(where: Where) -> None:
    async with serving(where) as client:
        await call(client, "write_file", path=str(where.root / "abs.txt"), content="in")
        read = await call(client, "read_file", path="abs.txt")
    assert read["path"] == "abs.txt"


async def test_a_symlink_a_cell_made_to_etc_cannot_be_read_through(where: Where) -> None:
    async with serving(where) as client:
        made = await call(client, "run_python_code", code="import os; os.symlink('/etc', 'ln')")
        assert made["status"] == "ok"
        through = await error(client, "read_file", path="ln/passwd")
        written = await error(client, "write_file", path="ln/planted", content="x")
        listed = await call(client, "list_files")
        deleted = await call(client, "delete_file", path="ln")
    assert through == refused("ln/passwd", RULE_SYMLINK)
    assert written == refused("ln/planted", RULE_SYMLINK)
    assert ("ln", "symlink") in [(e["path"], e["type"]) for e in listed["entries"]]
    assert deleted["message"] == "Deleted the link 'ln' (its target was not touched)."
    assert Path("/etc/passwd").exists()


async def test_the_same_errors_for_missing_existing_folders_and_files(where: Where) -> None:
    (where.root / "folder").mkdir()
    (where.root / "folder" / "f.txt").write_text("x")
    async with serving(where) as client:
        missing = await error(client, "read_file", path="nope.txt")
        exists = await error(
            client, "write_file", path="folder/f.txt", content="y", overwrite=False
        )
        folder = await error(client, "read_file", path="folder")
        not_dir = await error(client, "list_files", path="folder/f.txt")
        undeleted = await error(client, "delete_file", path="folder")
        blocked = await error(client, "write_file", path="folder/f.txt/deeper.txt", content="z")
        past = await error(client, "read_file", path="folder/f.txt", offset=5)
        gone = await error(client, "delete_file", path="folder/nope")
        deleted = await call(client, "delete_file", path="folder", recursive=True)
    assert missing == str(WorkspaceFileNotFoundError("nope.txt"))
    assert exists == str(WorkspaceFileExistsError("folder/f.txt"))
    assert folder == str(NotAFileError("folder"))
    assert not_dir == str(NotADirectoryError_("folder/f.txt"))
    assert undeleted == str(is_a_folder("folder"))
    assert blocked == str(parents_blocked("folder/f.txt/deeper.txt"))
    assert past == "offset 5 is past the end of 'folder/f.txt', which is 1 bytes."
    assert gone == str(WorkspaceFileNotFoundError("folder/nope"))
    assert deleted["message"] == "Deleted the folder 'folder' and everything in it."


async def test_a_long_file_is_read_in_chunks_and_refused_whole_past_the_limit(
    where: Where,
) -> None:
    (where.root / "big.txt").write_text("abcdefghij" * 3)
    async with serving(where, max_file_read_bytes=10) as client:
        first = await call(client, "read_file", path="big.txt")
        second = await call(client, "read_file", path="big.txt", offset=first["next_offset"])
        with pytest.raises(MCPError) as whole:
            await client.read_resource("workspace://big.txt")
    assert (first["content"], first["truncated"], first["next_offset"]) == ("abcdefghij", True, 10)
    assert first["message"] == (
        "Returned bytes 0..10 of 30. Call read_file with offset=10 for the next chunk."
    )
    assert second["offset"] == 10
    assert str(whole.value) == str(FileTooLargeError("big.txt", 30, 10, READ_HINT))


async def test_a_write_over_the_limit_is_refused_and_a_large_one_arrives_whole(
    where: Where,
) -> None:
    big = os.urandom(6 * 1024 * 1024)  # more than one piece on its way to a gateway's kernel
    async with serving(where, max_file_write_bytes=len(big)) as client:
        over = await error(
            client,
            "write_file",
            path="over.bin",
            content=base64.b64encode(big + b"x").decode(),
            encoding="base64",
        )
        await call(
            client,
            "write_file",
            path="large.bin",
            content=base64.b64encode(big).decode(),
            encoding="base64",
        )
    assert over == str(
        FileTooLargeError(
            "over.bin",
            len(big) + 1,
            len(big),
            "Write it as several smaller files, or produce it with code.",
        )
    )
    assert (where.root / "large.bin").read_bytes() == big


async def test_workspace_resources_are_read_where_the_kernels_are(where: Where) -> None:
    (where.root / "notes.md").write_text("# hi\n")
    (where.root / "pixel.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    async with serving(where) as client:
        text = await client.read_resource("workspace://notes.md")
        blob = await client.read_resource("workspace://pixel.png")
        with pytest.raises(MCPError) as escape:
            await client.read_resource("workspace://../secret")
    assert isinstance(text[0], TextResourceContents)
    assert (text[0].text, text[0].mime_type) == ("# hi\n", "text/markdown")
    assert isinstance(blob[0], BlobResourceContents)
    assert base64.b64decode(blob[0].blob) == b"\x89PNG\r\n\x1a\n\x00"
    assert str(escape.value) == refused("../secret", RULE_PARENT)


async def test_the_files_a_cell_wrote_are_reported(where: Where) -> None:
    async with serving(where) as client:
        ran = await call(
            client, "run_python_code", code="open('outputs/made.csv', 'w').write('a,b\\n1,2\\n')"
        )
    assert ran["files"] == [
        {
            "path": "outputs/made.csv",
            "uri": "workspace://outputs/made.csv",
            "size": 8,
            "mime_type": "text/csv",
        }
    ]


# ---------------------------------------------------------------------------- scripts


async def test_a_script_runs_where_the_kernels_are_with_its_output_and_exit_code(
    where: Where,
) -> None:
    code = (
        "import os, sys\n"
        "print('args', sys.argv[1:])\n"
        "print('cwd', os.getcwd())\n"
        "open('from_script.txt', 'w').write('ok')\n"
        "print('bad', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    async with serving(where) as client:
        saved = await call(client, "save_script", name="job", code=code)
        ran = await call(client, "run_script", name="job", args=["a b", "c"])
        missing = await error(client, "run_script", name="nope")
    assert saved["path"] == "scripts/job.py"
    assert (where.root / "scripts" / "job.py").read_text() == code
    assert ran["exit_code"] == 3
    assert ran["timed_out"] is False
    assert ran["stdout"] == f"args ['a b', 'c']\ncwd {where.root}\n"
    assert ran["stderr"] == "bad\n"
    assert ran["message"] == "The script exited with code 3; see stderr."
    assert (where.root / "from_script.txt").read_text() == "ok"
    assert missing == str(ScriptNotFoundError("nope.py"))


async def test_long_script_output_keeps_head_and_tail(where: Where) -> None:
    code = "import sys\nprint('A' * 10 + 'x' * 100_000 + 'B' * 9)\nsys.stderr.write('é' * 3)\n"
    async with serving(where, max_output_chars=20) as client:
        await call(client, "save_script", name="loud", code=code)
        ran = await call(client, "run_script", name="loud")
    assert ran["stdout"] == "AAAAAAAAAA\n... [100000 bytes omitted] ...\nBBBBBBBBB\n"
    assert (ran["stdout_truncated"], ran["stderr"], ran["stderr_truncated"]) == (True, "ééé", False)
    assert ran["message"] == (
        "Long output was cut to 20 bytes per stream (head and tail kept); write large results "
        "to a file in outputs/ instead."
    )


@pytest.mark.slow
async def test_a_script_past_its_time_is_killed_with_what_it_started(where: Where) -> None:
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    async with serving(where) as client:
        await call(client, "save_script", name="slow", code=code)
        ran = await call(client, "run_script", name="slow", timeout_s=2)
    assert ran["timed_out"] is True
    assert ran["exit_code"] == -9
    assert ran["stdout"] == "started\n"
    assert ran["killed_processes"] == 2
    assert ran["message"].startswith(
        "The script ran past 2 s and was killed, with every process it started (2 in all)."
    )


# ------------------------------------------------------------- notebooks and restarts


async def test_an_exported_notebook_is_written_and_read_back(where: Where) -> None:
    async with serving(where) as client:
        await call(client, "run_python_code", code="print(6 * 7)")
        exported = await call(client, "export_notebook", path="notebooks/work")
        read = await call(client, "read_file", path="notebooks/work.ipynb")
    assert exported["path"] == "notebooks/work.ipynb"
    notebook = json.loads(read["content"])
    assert notebook == json.loads((where.root / "notebooks" / "work.ipynb").read_text())
    cell = notebook["cells"][0]
    assert cell["source"] == ["print(6 * 7)"]
    assert cell["outputs"][0]["text"] == ["42\n"]


async def test_a_restart_that_preserves_state_keeps_variables_small_and_large(
    where: Where,
) -> None:
    # `blob` pickles to 10 MB: more than one piece on its way through the server
    setup = "kept = {'n': 41}\nblob = bytes(range(256)) * 40_000"
    async with serving(where) as client:
        await call(client, "run_python_code", code=setup)
        restarted = await call(client, "restart_kernel", preserve_state=True)
        after = await call(
            client, "run_python_code", code="(kept['n'] + 1, blob == bytes(range(256)) * 40_000)"
        )
    assert restarted["state_preserved"] is True
    assert restarted["restored"] == ["blob", "kept"]
    assert after["result"] == "(42, True)"


# ------------------------------------------------- the kernel that serves the workspace


def _gateway_config(config: ServerConfig, gateway: KernelGateway) -> ServerConfig:
    return dataclasses.replace(
        config, kernel_gateway_url=gateway.url, kernel_gateway_token=gateway.token, sandbox="off"
    )


async def test_the_files_kernel_is_no_session_and_ends_with_the_server(
    config: ServerConfig, kernel_gateway: KernelGateway
) -> None:
    async with Client(create_server(_gateway_config(config, kernel_gateway))) as client:
        await call(client, "list_files")
        sessions = await call(client, "list_sessions")
        on_gateway = kernel_gateway.kernel_ids()
    assert sessions["sessions"] == []
    assert len(on_gateway) == 1
    assert kernel_gateway.kernel_ids() == set()


async def test_a_files_kernel_the_gateway_deleted_is_replaced_on_the_next_call(
    config: ServerConfig, kernel_gateway: KernelGateway
) -> None:
    async with Client(create_server(_gateway_config(config, kernel_gateway))) as client:
        await call(client, "write_file", path="kept.txt", content="still here")
        (first,) = kernel_gateway.kernel_ids()
        kernel_gateway.delete_kernel(first)  # as a gateway culling idle kernels does
        read = await call(client, "read_file", path="kept.txt")
        written = await call(client, "write_file", path="after.txt", content="new")
        now = kernel_gateway.kernel_ids()
    assert read["content"] == "still here"
    assert written["created"] is True
    assert len(now) == 1
    assert first not in now
