"""The file tools and the workspace:// resource through the in-memory client, on real files."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import BlobResourceContents, TextContent, TextResourceContents

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.helpers import call, error

pytestmark = pytest.mark.anyio


def refused(path: str, rule: str) -> str:
    return (
        f"Path {path!r} is refused: {rule}. Use a path relative to the workspace root, "
        "for example 'data/input.csv'."
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("top secret")
    return out


# ------------------------------------------------------------------ layout and info


async def test_the_standard_subfolders_exist_once_the_server_starts(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        info = await call(client, "get_workspace_info")
    assert sorted(p.name for p in workspace.iterdir()) == ["outputs", "scripts", "uploads"]
    assert info["subfolders"] == ["outputs", "scripts", "uploads"]


async def test_workspace_info_counts_files_bytes_and_states_the_limits(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "data").mkdir()
    (workspace / "data" / "a.bin").write_bytes(b"x" * 100)
    (workspace / "b.txt").write_text("hello")
    async with Client(create_server(config)) as client:
        info = await call(client, "get_workspace_info")
    assert info == {
        "root": str(workspace.resolve()),
        "bytes_used": 105,
        "file_count": 2,
        "folder_count": 4,
        "subfolders": ["data", "outputs", "scripts", "uploads"],
        "scan_truncated": False,
        "max_file_read_bytes": config.max_file_read_bytes,
        "max_file_write_bytes": config.max_file_write_bytes,
        "max_list_entries": config.max_list_entries,
    }


# --------------------------------------------------------------------- write/read


async def test_text_written_is_read_back_with_its_size(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        written = await call(client, "write_file", path="notes/hello.txt", content="héllo\n")
        read = await call(client, "read_file", path="notes/hello.txt")
    assert written == {
        "path": "notes/hello.txt",
        "bytes_written": 7,
        "created": True,
        "uri": "workspace://notes/hello.txt",
    }
    assert read == {
        "path": "notes/hello.txt",
        "content": "héllo\n",
        "encoding": "utf-8",
        "total_size": 7,
        "offset": 0,
        "bytes_returned": 7,
        "truncated": False,
        "next_offset": None,
        "uri": "workspace://notes/hello.txt",
        "message": None,
    }


async def test_write_creates_the_missing_parent_folders(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "write_file", path="a/b/c/d.txt", content="deep")
    assert (workspace / "a" / "b" / "c" / "d.txt").read_text() == "deep"


async def test_binary_bytes_round_trip_through_base64(
    config: ServerConfig, workspace: Path
) -> None:
    data = bytes(range(256)) * 4
    async with Client(create_server(config)) as client:
        await call(
            client,
            "write_file",
            path="blob.bin",
            content=base64.b64encode(data).decode(),
            encoding="base64",
        )
        read = await call(client, "read_file", path="blob.bin")
    assert (workspace / "blob.bin").read_bytes() == data
    assert read["encoding"] == "base64"
    assert base64.b64decode(read["content"]) == data


async def test_invalid_base64_is_refused(config: ServerConfig, workspace: Path) -> None:
    async with Client(create_server(config)) as client:
        message = await error(
            client, "write_file", path="x.bin", content="not base64!", encoding="base64"
        )
    assert message.startswith("The content for 'x.bin' is not valid base64 (")
    assert not (workspace / "x.bin").exists()


async def test_overwrite_false_refuses_an_existing_file_and_leaves_it_alone(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "keep.txt").write_text("original")
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="keep.txt", content="new", overwrite=False)
    assert message == (
        "'keep.txt' already exists. Pass overwrite=true to replace it, or choose another path."
    )
    assert (workspace / "keep.txt").read_text() == "original"


async def test_overwrite_replaces_the_file_and_leaves_no_temporary_file(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "f.txt").write_text("old")
    async with Client(create_server(config)) as client:
        written = await call(client, "write_file", path="f.txt", content="new")
    assert written["created"] is False
    assert (workspace / "f.txt").read_text() == "new"
    assert [p.name for p in workspace.iterdir() if p.name.startswith(".")] == []


async def test_overwrite_false_writes_a_new_file(config: ServerConfig, workspace: Path) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "write_file", path="n.txt", content="fresh", overwrite=False)
    assert (workspace / "n.txt").read_text() == "fresh"


async def test_a_write_over_the_size_limit_is_refused(
    config: ServerConfig, workspace: Path
) -> None:
    small = dataclasses.replace(config, max_file_write_bytes=10)
    async with Client(create_server(small)) as client:
        message = await error(client, "write_file", path="big.txt", content="x" * 11)
    assert message == (
        "'big.txt' is 11 bytes, over the limit of 10 bytes. Write it as several smaller files, "
        "or produce it with code."
    )
    assert not (workspace / "big.txt").exists()


async def test_writing_onto_a_folder_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="scripts", content="x")
    assert message == "'scripts' is a folder, not a file. Call list_files to see inside it."


async def test_a_file_over_the_read_limit_comes_back_in_chunks(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "big.txt").write_text("0123456789" * 3)
    small = dataclasses.replace(config, max_file_read_bytes=12)
    async with Client(create_server(small)) as client:
        first = await call(client, "read_file", path="big.txt", max_bytes=1000)
        second = await call(client, "read_file", path="big.txt", offset=first["next_offset"])
        last = await call(client, "read_file", path="big.txt", offset=second["next_offset"])
    assert (first["content"], first["truncated"], first["next_offset"]) == (
        "012345678901",
        True,
        12,
    )
    assert first["message"] == (
        "max_bytes was lowered to the server limit of 12 bytes. Returned bytes 0..12 of 30. "
        "Call read_file with offset=12 for the next chunk."
    )
    assert (second["content"], second["next_offset"]) == ("234567890123", 24)
    assert (last["content"], last["truncated"], last["next_offset"]) == ("456789", False, None)


async def test_a_chunk_never_splits_a_multibyte_character(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "u.txt").write_text("aé€b", encoding="utf-8")  # 1 + 2 + 3 + 1 bytes
    async with Client(create_server(config)) as client:
        first = await call(client, "read_file", path="u.txt", max_bytes=4)
        rest = await call(client, "read_file", path="u.txt", offset=first["next_offset"])
    assert (first["content"], first["bytes_returned"], first["encoding"]) == ("aé", 3, "utf-8")
    assert (rest["content"], rest["offset"], rest["truncated"]) == ("€b", 3, False)


async def test_an_offset_past_the_end_is_refused(config: ServerConfig, workspace: Path) -> None:
    (workspace / "s.txt").write_text("abc")
    async with Client(create_server(config)) as client:
        message = await error(client, "read_file", path="s.txt", offset=10)
    assert message == "offset 10 is past the end of 's.txt', which is 3 bytes."


async def test_reading_a_missing_file_names_list_files(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "read_file", path="nope.txt")
    assert (
        message
        == "No file or folder 'nope.txt' in the workspace. Call list_files to see what exists."
    )


async def test_reading_a_folder_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "read_file", path="outputs")
    assert message == "'outputs' is a folder, not a file. Call list_files to see inside it."


# -------------------------------------------------------------------- confinement


async def test_dot_dot_traversal_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "read_file", path="../../etc/passwd")
    assert message == refused("../../etc/passwd", "its '..' parts lead outside the workspace")


async def test_an_absolute_path_outside_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="/tmp/evil.txt", content="x")
    assert message == refused("/tmp/evil.txt", "it is an absolute path outside the workspace")
    assert not Path("/tmp/evil.txt").exists()


async def test_an_absolute_path_inside_the_workspace_is_accepted(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "write_file", path=str(workspace / "abs.txt"), content="ok")
    assert (workspace / "abs.txt").read_text() == "ok"


async def test_a_symlinked_file_pointing_outside_cannot_be_read(
    config: ServerConfig, workspace: Path, outside: Path
) -> None:
    (workspace / "leak.txt").symlink_to(outside / "secret.txt")
    async with Client(create_server(config)) as client:
        message = await error(client, "read_file", path="leak.txt")
    assert message == refused(
        "leak.txt", "it goes through a symlink that points outside the workspace"
    )


async def test_a_symlinked_folder_pointing_outside_cannot_be_written_through(
    config: ServerConfig, workspace: Path, outside: Path
) -> None:
    (workspace / "out").symlink_to(outside, target_is_directory=True)
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="out/planted.txt", content="x")
    assert message == refused(
        "out/planted.txt", "it goes through a symlink that points outside the workspace"
    )
    assert not (outside / "planted.txt").exists()


async def test_a_nul_byte_in_a_path_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "read_file", path="a.txt\x00.png")
    assert message == refused("a.txt\x00.png", "it contains a NUL byte")


async def test_an_empty_path_is_refused_where_a_file_is_needed(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="", content="x")
    assert message == refused("", "it is empty; name a file or folder inside the workspace")


# ---------------------------------------------------------------------- listing


async def test_list_files_gives_type_size_time_and_a_tree(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "data").mkdir()
    (workspace / "data" / "a.csv").write_text("1,2\n")
    async with Client(create_server(config)) as client:
        res = await client.call_tool("list_files", {"recursive": True})
    data = res.structured_content
    assert data is not None
    rows = [(e["path"], e["type"], e["size"]) for e in data["entries"]]
    assert rows == [
        ("data", "directory", None),
        ("data/a.csv", "file", 4),
        ("outputs", "directory", None),
        ("scripts", "directory", None),
        ("uploads", "directory", None),
    ]
    assert all(e["modified"].endswith("+00:00") for e in data["entries"])
    assert data["truncated"] is False
    assert data["tree"] == "./\n  data/\n    a.csv  (4 B)\n  outputs/\n  scripts/\n  uploads/"
    item = res.content[0]
    assert isinstance(item, TextContent)
    assert item.text == data["tree"]


async def test_list_files_without_recursion_stays_in_the_folder(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "data" / "deep").mkdir(parents=True)
    (workspace / "data" / "x.txt").write_text("x")
    async with Client(create_server(config)) as client:
        data = await call(client, "list_files", path="data")
    assert [e["path"] for e in data["entries"]] == ["data/deep", "data/x.txt"]
    assert data["path"] == "data"


async def test_list_files_filters_by_pattern_and_draws_the_folders_leading_there(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "data").mkdir()
    (workspace / "data" / "a.csv").write_text("a")
    (workspace / "data" / "b.json").write_text("b")
    (workspace / "top.csv").write_text("t")
    async with Client(create_server(config)) as client:
        data = await call(client, "list_files", pattern="*.csv", recursive=True)
    assert [e["path"] for e in data["entries"]] == ["data/a.csv", "top.csv"]
    assert data["tree"] == "./\n  data/\n    a.csv  (1 B)\n  top.csv  (1 B)"


async def test_a_long_listing_is_cut_says_so_and_pages(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "uploads").mkdir()
    for i in range(5):
        (workspace / "uploads" / f"f{i}.txt").write_text("x")
    async with Client(create_server(config)) as client:
        data = await call(client, "list_files", path="uploads", max_entries=2)
        pages = [data]
        while pages[-1]["next_offset"] is not None:
            pages.append(
                await call(
                    client,
                    "list_files",
                    path="uploads",
                    max_entries=2,
                    offset=pages[-1]["next_offset"],
                )
            )
        past = await call(client, "list_files", path="uploads", offset=9)
    assert [e["path"] for e in data["entries"]] == ["uploads/f0.txt", "uploads/f1.txt"]
    assert (data["truncated"], data["total"], data["next_offset"]) == (True, 5, 2)
    assert data["message"] == (
        "Showing entries 1-2 of 5: call list_files again with offset=2 for the next ones, or "
        "narrow it with a pattern such as '*.csv'."
    )
    assert [e["path"] for page in pages for e in page["entries"]] == [
        f"uploads/f{i}.txt" for i in range(5)
    ]
    assert (pages[-1]["truncated"], pages[-1]["message"]) == (False, None)
    assert (past["entries"], past["total"], past["next_offset"]) == ([], 5, None)
    assert past["message"] == (
        "offset=9 is past the last of the 5 matching entries; start again with offset=0."
    )


async def test_the_server_limit_caps_max_entries(config: ServerConfig, workspace: Path) -> None:
    (workspace / "uploads").mkdir()
    for i in range(4):
        (workspace / "uploads" / f"f{i}.txt").write_text("x")
    capped = dataclasses.replace(config, max_list_entries=3)
    async with Client(create_server(capped)) as client:
        data = await call(client, "list_files", path="uploads", max_entries=100)
    assert (len(data["entries"]), data["truncated"]) == (3, True)


async def test_a_symlink_is_listed_but_not_followed(
    config: ServerConfig, workspace: Path, outside: Path
) -> None:
    (workspace / "uploads").mkdir()
    (workspace / "uploads" / "out").symlink_to(outside, target_is_directory=True)
    async with Client(create_server(config)) as client:
        data = await call(client, "list_files", path="uploads", recursive=True)
    assert [(e["path"], e["type"]) for e in data["entries"]] == [("uploads/out", "symlink")]


async def test_listing_a_file_is_refused(config: ServerConfig, workspace: Path) -> None:
    (workspace / "f.txt").write_text("x")
    async with Client(create_server(config)) as client:
        message = await error(client, "list_files", path="f.txt")
    assert message == "'f.txt' is a file, not a folder. Use read_file to read it."


async def test_listing_outside_the_workspace_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "list_files", path="..")
    assert message == refused("..", "its '..' parts lead outside the workspace")


# ---------------------------------------------------------------------- delete


async def test_delete_removes_a_file(config: ServerConfig, workspace: Path) -> None:
    (workspace / "gone.txt").write_text("x")
    async with Client(create_server(config)) as client:
        data = await call(client, "delete_file", path="gone.txt")
    assert data == {"path": "gone.txt", "type": "file", "message": "Deleted 'gone.txt'."}
    assert not (workspace / "gone.txt").exists()


async def test_a_folder_is_not_deleted_without_recursive(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "d").mkdir()
    (workspace / "d" / "f.txt").write_text("x")
    async with Client(create_server(config)) as client:
        message = await error(client, "delete_file", path="d")
    assert message == (
        "'d' is a folder. Pass recursive=true to delete it and everything in it, or delete the "
        "files inside one by one."
    )
    assert (workspace / "d" / "f.txt").exists()


async def test_a_folder_is_deleted_with_recursive(config: ServerConfig, workspace: Path) -> None:
    (workspace / "d" / "e").mkdir(parents=True)
    (workspace / "d" / "e" / "f.txt").write_text("x")
    async with Client(create_server(config)) as client:
        data = await call(client, "delete_file", path="d", recursive=True)
    assert data["message"] == "Deleted the folder 'd' and everything in it."
    assert not (workspace / "d").exists()


@pytest.mark.parametrize("path", [".", "scripts/..", ""])
async def test_the_workspace_root_cannot_be_deleted(
    config: ServerConfig, workspace: Path, path: str
) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "delete_file", path=path, recursive=True)
    assert message.startswith(f"Path {path!r} is refused: ")
    assert (workspace / "scripts").is_dir()


async def test_deleting_an_outward_link_removes_the_link_only(
    config: ServerConfig, workspace: Path, outside: Path
) -> None:
    (workspace / "leak.txt").symlink_to(outside / "secret.txt")
    async with Client(create_server(config)) as client:
        data = await call(client, "delete_file", path="leak.txt")
    assert data["message"] == "Deleted the link 'leak.txt' (its target was not touched)."
    assert not (workspace / "leak.txt").is_symlink()
    assert (outside / "secret.txt").read_text() == "top secret"


async def test_deleting_a_standard_subfolder_recreates_it_empty(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "outputs").mkdir()
    (workspace / "outputs" / "old.png").write_bytes(b"x")
    async with Client(create_server(config)) as client:
        await call(client, "delete_file", path="outputs", recursive=True)
    assert list((workspace / "outputs").iterdir()) == []


async def test_deleting_a_missing_file_names_list_files(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "delete_file", path="nope")
    assert (
        message == "No file or folder 'nope' in the workspace. Call list_files to see what exists."
    )


# -------------------------------------------------------------------- resources


async def test_a_text_file_is_served_as_a_text_resource(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "data").mkdir()
    (workspace / "data" / "t.csv").write_text("a,b\n1,2\n")
    async with Client(create_server(config)) as client:
        contents = await client.read_resource("workspace://data/t.csv")
    assert len(contents) == 1
    item = contents[0]
    assert isinstance(item, TextResourceContents)
    assert (item.text, item.mime_type) == ("a,b\n1,2\n", "text/csv")


async def test_a_binary_file_is_served_as_a_blob_with_its_mime_type(
    config: ServerConfig, workspace: Path
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    (workspace / "outputs").mkdir()
    (workspace / "outputs" / "p.png").write_bytes(png)
    async with Client(create_server(config)) as client:
        contents = await client.read_resource("workspace://outputs/p.png")
    item = contents[0]
    assert isinstance(item, BlobResourceContents)
    assert item.mime_type == "image/png"
    assert base64.b64decode(item.blob) == png


async def test_a_resource_escape_is_refused_with_our_message(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        with pytest.raises(MCPError) as err:
            await client.read_resource("workspace://../etc/passwd")
    assert str(err.value) == refused("../etc/passwd", "its '..' parts lead outside the workspace")


async def test_a_resource_through_an_outward_symlink_is_refused(
    config: ServerConfig, workspace: Path, outside: Path
) -> None:
    (workspace / "leak.txt").symlink_to(outside / "secret.txt")
    async with Client(create_server(config)) as client:
        with pytest.raises(MCPError) as err:
            await client.read_resource("workspace://leak.txt")
    assert str(err.value) == refused(
        "leak.txt", "it goes through a symlink that points outside the workspace"
    )


async def test_a_missing_resource_names_list_files(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        with pytest.raises(MCPError) as err:
            await client.read_resource("workspace://missing.txt")
    assert str(err.value) == (
        "No file or folder 'missing.txt' in the workspace. Call list_files to see what exists."
    )


async def test_a_resource_over_the_read_limit_points_to_read_file(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "big.txt").write_text("x" * 20)
    small = dataclasses.replace(config, max_file_read_bytes=10)
    async with Client(create_server(small)) as client:
        with pytest.raises(MCPError) as err:
            await client.read_resource("workspace://big.txt")
    assert str(err.value) == (
        "'big.txt' is 20 bytes, over the limit of 10 bytes. Read it in chunks with "
        "read_file(path, offset=...)."
    )


# ------------------------------------------------------------------ tool metadata


async def test_file_tools_declare_annotations_and_output_schemas(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        tools = {t.name: t for t in await client.list_tools()}
        templates = await client.list_resource_templates()
    hints = {}
    for name in (
        "list_files",
        "read_file",
        "get_workspace_info",
        "write_file",
        "delete_file",
        "save_script",
        "run_script",
    ):
        ann = tools[name].annotations
        assert ann is not None, name
        hints[name] = (ann.read_only_hint, ann.destructive_hint, ann.idempotent_hint)
    assert hints == {
        "list_files": (True, False, True),
        "read_file": (True, False, True),
        "get_workspace_info": (True, False, True),
        "write_file": (False, True, True),
        "delete_file": (False, True, False),
        "save_script": (False, True, True),
        "run_script": (False, True, False),
    }
    for name in hints:
        assert tools[name].output_schema is not None, name
        assert tools[name].description, name
    assert [t.uri_template for t in templates if t.name == "workspace_file"] == [
        "workspace://{path*}"
    ]


# ------------------------------------------------------------------ appending


async def test_append_builds_a_file_from_pieces(config: ServerConfig, workspace: Path) -> None:
    async with Client(create_server(config)) as client:
        first = await call(
            client,
            "write_file",
            path="big/data.bin",
            append=True,
            content=base64.b64encode(b"\x00\x01").decode(),
            encoding="base64",
        )
        second = await call(
            client,
            "write_file",
            path="big/data.bin",
            append=True,
            content=base64.b64encode(b"\x02").decode(),
            encoding="base64",
        )
    assert (first["created"], second["created"]) == (True, False)
    assert (workspace / "big" / "data.bin").read_bytes() == b"\x00\x01\x02"


async def test_appending_past_the_write_cap_is_refused(
    config: ServerConfig, workspace: Path
) -> None:
    small = dataclasses.replace(config, max_file_write_bytes=5)
    async with Client(create_server(small)) as client:
        await call(client, "write_file", path="log.txt", content="1234")
        message = await error(client, "write_file", path="log.txt", content="56", append=True)
    assert message.startswith("'log.txt' is 6 bytes, over the limit of 5 bytes.")
    assert (workspace / "log.txt").read_text() == "1234"


async def test_a_path_ending_in_a_slash_is_refused_as_a_folder(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="dir1/", content="x")
    assert message == (
        "'dir1/' ends with a slash, so it names a folder; give a file name such as "
        "'dir1/data.txt'. Folders are created as needed."
    )


# ------------------------------------------------------------------ what the file system refuses


async def test_a_name_too_long_for_the_file_system_is_a_clear_error(config: ServerConfig) -> None:
    name = "n" * 300 + ".txt"
    async with Client(create_server(config)) as client:
        await call(client, "run_python_code", code="1")  # a session to export
        for tool, args in (
            ("read_file", {"path": name}),
            ("write_file", {"path": name, "content": "x"}),
            ("delete_file", {"path": name}),
            ("list_files", {"path": name}),
            ("export_notebook", {"path": "n" * 300 + ".ipynb"}),
        ):
            message = await error(client, tool, **args)
            assert "File name too long" in message, (tool, message)
        with pytest.raises(MCPError) as caught:
            await client.read_resource(f"workspace://{name}")
    assert "File name too long" in str(caught.value)


async def test_writing_to_a_fifo_is_refused_instead_of_hanging(
    config: ServerConfig, workspace: Path
) -> None:
    os.mkfifo(workspace / "pipe")
    async with Client(create_server(config)) as client:
        with anyio.fail_after(20):
            plain = await error(client, "write_file", path="pipe", content="x")
            appended = await error(client, "write_file", path="pipe", content="x", append=True)
    expected = (
        "'pipe' is not a regular file (a pipe, socket or device); only regular files can be "
        "written. Choose another path."
    )
    assert (plain, appended) == (expected, expected)


async def test_a_symlink_loop_is_a_clear_error(config: ServerConfig, workspace: Path) -> None:
    (workspace / "loop_a").symlink_to(workspace / "loop_b")
    (workspace / "loop_b").symlink_to(workspace / "loop_a")
    async with Client(create_server(config)) as client:
        message = await error(client, "write_file", path="loop_a", content="x")
    assert "symbolic links" in message or "symlink" in message


async def test_reading_a_fifo_is_refused_instead_of_hanging(
    config: ServerConfig, workspace: Path
) -> None:
    os.mkfifo(workspace / "pipe")
    async with Client(create_server(config)) as client:
        with anyio.fail_after(20):
            message = await error(client, "read_file", path="pipe")
            with pytest.raises(MCPError) as caught:
                await client.read_resource("workspace://pipe")
    expected = (
        "'pipe' is not a regular file (a pipe, socket or device); only regular files can be "
        "read. Choose another path."
    )
    assert (message, str(caught.value)) == (expected, expected)


async def test_a_link_inside_is_written_and_read_through_and_stays_a_link(
    config: ServerConfig, workspace: Path
) -> None:
    (workspace / "data").mkdir()
    (workspace / "data" / "a.txt").write_text("old")
    (workspace / "alias").symlink_to("data/a.txt")
    async with Client(create_server(config)) as client:
        written = await call(client, "write_file", path="alias", content="new")
        appended = await call(client, "write_file", path="alias", content="+", append=True)
        read = await call(client, "read_file", path="alias")
    assert (written["path"], written["created"]) == ("data/a.txt", False)
    assert (appended["path"], appended["created"]) == ("data/a.txt", False)
    assert (read["path"], read["content"]) == ("data/a.txt", "new+")
    assert (workspace / "alias").is_symlink()
