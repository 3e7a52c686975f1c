"""The file tools while a cell swaps what they open for a symlink to something outside the
workspace: a thread swaps in a tight loop, for a bounded number of rounds, while the test calls
the workspace operations directly; then a real kernel cell does the swapping while a client
calls the tools. No call may return what is outside, or change it."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError, ServerError, WorkspaceError
from python_mcp_server.server import create_server
from python_mcp_server.workspace.manager import WorkspaceManager
from tests.helpers import call, start_cell, wait_for_file

SECRET = "top secret"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(SECRET)
    return out.resolve()


@contextmanager
def swapping(swap: Callable[[], None], rounds: int = 200_000) -> Iterator[None]:
    """Run `swap` over and over in a thread (at most `rounds` times) while the body runs."""
    stop = threading.Event()

    def loop() -> None:
        for _ in range(rounds):
            if stop.is_set():
                return
            swap()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(30)


def file_swap(folder: Path, name: str, target: Path) -> Callable[[], None]:
    """`name` becomes a link to `target`, then a regular file again; each by one rename, so
    the name always exists (as a cell would do it)."""

    def swap() -> None:
        link, real = folder / ".swap-link", folder / ".swap-real"
        link.symlink_to(target)
        os.replace(link, folder / name)
        real.write_text("inside")
        os.replace(real, folder / name)

    return swap


def folder_swap(folder: Path, name: str, target: Path) -> Callable[[], None]:
    """`name` becomes a link to the folder `target`, then the real folder again (a folder
    cannot be renamed over a link: each move takes two renames)."""
    link, real = folder / ".swap-link", folder / ".swap-real"
    link.symlink_to(target, target_is_directory=True)

    def move(src: Path, dst: Path) -> None:
        for _ in range(100):
            try:
                os.rename(src, dst)
                return
            except OSError:  # a write made a new folder there while it was free: drop it
                shutil.rmtree(dst, ignore_errors=True)

    def swap() -> None:
        move(folder / name, real)
        move(link, folder / name)
        move(folder / name, link)
        move(real, folder / name)

    return swap


def manager(root: Path) -> WorkspaceManager:
    return WorkspaceManager.open(ServerConfig(workspace_dir=root))


def test_a_file_swapped_for_an_outward_link_is_never_read_or_appended_to(
    root: Path, outside: Path
) -> None:
    ws = manager(root)
    secret = outside / "secret.txt"
    (root / "victim").write_text("inside")
    leaked = refusals = 0
    with swapping(file_swap(root, "victim", secret)):
        for _ in range(2000):
            try:
                leaked += SECRET in ws.read_sync("victim", 0, None).content
            except (ServerError, OSError):  # an OSError is a ServerError once a tool maps it
                refusals += 1
            try:
                ws.write_bytes("victim", b"X", append=True)
            except (ServerError, OSError):
                refusals += 1
    assert leaked == 0
    assert secret.read_text() == SECRET
    assert refusals > 0  # the swap did race the calls


def test_a_folder_swapped_for_an_outward_link_is_never_entered(root: Path, outside: Path) -> None:
    ws = manager(root)
    (outside / "keep.txt").write_text("keep")
    (outside / "only-outside.txt").write_text("x")
    (root / "d").mkdir()
    (root / "d" / "secret.txt").write_text("inside")
    seen: list[str] = []
    with swapping(folder_swap(root, "d", outside)):
        for i in range(500):
            for op, args in (
                (ws.read_sync, ("d/secret.txt", 0, None)),
                (ws.write_bytes, (f"d/new-{i}.txt", b"x")),
                (ws.write_bytes, ("d/secret.txt", b"X", True, True)),
                (ws.delete_sync, ("d/keep.txt", False)),
                (ws.list_sync, ("d", None, True, None)),
            ):
                try:
                    seen.append(str(op(*args)))
                except (WorkspaceError, InvalidArgumentError, OSError):  # as the tools say it
                    continue
    assert not [s for s in seen if SECRET in s or "only-outside" in s]
    assert sorted(p.name for p in outside.iterdir()) == [
        "keep.txt",
        "only-outside.txt",
        "secret.txt",
    ]
    assert (outside / "secret.txt").read_text() == SECRET
    assert (outside / "keep.txt").read_text() == "keep"


SWAP_CELL = """
import os, time
secret = {secret!r}
with open('victim', 'w') as f:
    f.write('inside')
open('started', 'w').close()
deadline, swaps = time.monotonic() + 60, 0
while not os.path.exists('stop') and time.monotonic() < deadline:
    os.symlink(secret, 'link.tmp')
    os.replace('link.tmp', 'victim')
    with open('file.tmp', 'w') as f:
        f.write('inside')
    os.replace('file.tmp', 'victim')
    swaps += 1
swaps
"""


@pytest.mark.anyio
@pytest.mark.slow  # a kernel start and 600 tool calls: 7 to 16 s here, with other work running
@pytest.mark.timeout(120)
async def test_a_cell_swapping_a_file_for_a_link_never_gets_the_tools_outside(
    config: ServerConfig, workspace: Path, outside: Path
) -> None:
    secret = outside / "secret.txt"
    leaks: list[str] = []
    refused = 0
    async with Client(create_server(config)) as client, anyio.create_task_group() as tg:
        cell = start_cell(
            tg, client, {"code": SWAP_CELL.format(secret=str(secret)), "timeout_s": 90}
        )
        await wait_for_file(workspace / "started")
        for _ in range(300):
            read = await client.call_tool("read_file", {"path": "victim"}, raise_on_error=False)
            if read.is_error:
                refused += 1
            elif SECRET in str(read.structured_content):
                leaks.append(str(read.structured_content))
            appended = await client.call_tool(
                "write_file",
                {"path": "victim", "content": "X", "append": True},
                raise_on_error=False,
            )
            refused += appended.is_error
        await call(client, "write_file", path="stop", content="")
    assert cell[0]["status"] == "ok", cell
    assert int(cell[0]["result"]) > 0
    assert leaks == []
    assert secret.read_text() == SECRET
    assert refused > 0  # the swaps did race the calls
