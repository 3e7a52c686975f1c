"""The kernel side of the workspace for a server elsewhere (`kernel_ext.workspace_files` and its
walker `kernel_ext.beneath`), called in this process on a real folder tree: the same link
rules as the server's own walker, fifos, and files and folders swapped for outward links while
the operations run. (The same operations through a real gateway kernel, with the tools' own
results and messages, are in test_files_both_modes.py.)"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from python_mcp_server.kernel_ext import workspace_files
from tests.test_workspace_races import file_swap, folder_swap, swapping

SECRET = "top secret"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("a")
    monkeypatch.setenv("PYTHON_MCP_SERVER_WORKSPACE", str(root))
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(SECRET)
    return out.resolve()


def op(name: str, **args: Any) -> dict[str, Any]:
    outcome: dict[str, Any] = json.loads(workspace_files.call(name, json.dumps(args)))
    return outcome


def read(path: str) -> dict[str, Any]:
    return op("read", parts=[p for p in path.split("/") if p], offset=0, want=1000)


def content(outcome: dict[str, Any]) -> tuple[str, bytes]:
    found = outcome["ok"]
    return "/".join(found["parts"]), base64.b64decode(found["data"])


def write(path: str, data: bytes, *, append: bool = False) -> dict[str, Any]:
    return op(
        "write",
        parts=path.split("/"),
        data=base64.b64encode(data).decode(),
        overwrite=True,
        append=append,
        cap=1000,
    )


# --------------------------------------------------------------------------- the walker


def test_links_inside_are_followed_to_their_real_path(root: Path) -> None:
    (root / "to_sub").symlink_to("data/sub", target_is_directory=True)
    (root / "abs").symlink_to(root / "data" / "a.txt")
    (root / "d").symlink_to(root / "data", target_is_directory=True)
    assert content(read("data/sub/../a.txt")) == ("data/a.txt", b"a")
    assert content(read("to_sub/../a.txt")) == ("data/a.txt", b"a")
    assert content(read("abs")) == ("data/a.txt", b"a")
    assert content(read("d/a.txt")) == ("data/a.txt", b"a")


def test_links_that_lead_outside_are_refused_as_the_server_refuses_them(
    root: Path, outside: Path
) -> None:
    (root / "data" / "up").symlink_to("../../outside/secret.txt")
    (root / "abs_out").symlink_to(outside / "secret.txt")
    (root / "d").symlink_to(outside, target_is_directory=True)
    (root / "later").symlink_to(outside / "planted.txt")
    for path in ("data/up", "abs_out", "d/secret.txt"):
        assert read(path) == {"error": "outside", "rule": "symlink"}
    assert write("d/new/planted.txt", b"x") == {"error": "outside", "rule": "symlink"}
    assert write("later", b"x") == {"error": "outside", "rule": "symlink"}
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_links_into_proc_are_refused(root: Path, outside: Path) -> None:
    held = os.open(outside / "secret.txt", os.O_RDONLY)
    try:
        (root / "fd").symlink_to(f"/proc/self/fd/{held}")
        (root / "proc").symlink_to("/proc/self", target_is_directory=True)
        for path in ("fd", "proc/cwd", f"proc/fd/{held}"):
            assert read(path) == {"error": "outside", "rule": "symlink"}
    finally:
        os.close(held)


def test_a_link_loop_a_link_to_the_root_and_a_dangling_link_inside(root: Path) -> None:
    (root / "loop_a").symlink_to("loop_b")
    (root / "loop_b").symlink_to("loop_a")
    (root / "self").symlink_to(root, target_is_directory=True)
    (root / "later").symlink_to("data/new/later.txt")
    loop = read("loop_a")
    assert (loop["error"], loop["strerror"]) == ("os", "Too many levels of symbolic links")
    assert read("self") == {"error": "outside", "rule": "root"}
    assert read("self/data") == {"error": "not_a_file"}
    assert write("later", b"x")["ok"]["rel"] == "data/new/later.txt"
    assert (root / "data" / "new" / "later.txt").read_bytes() == b"x"
    assert (root / "later").is_symlink()


def test_a_fifo_is_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    done: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: done.append(read("pipe")), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock it before failing
        os.close(os.open(root / "pipe", os.O_WRONLY | os.O_NONBLOCK))
    assert not worker.is_alive(), "reading a fifo blocked"
    assert done == [{"error": "not_regular", "verb": "read"}]


# ----------------------------------------------------------------------------- races


def test_a_file_swapped_for_an_outward_link_is_never_read_or_appended_to(
    root: Path, outside: Path
) -> None:
    secret = outside / "secret.txt"
    (root / "victim").write_text("inside")
    leaked = refusals = 0
    with swapping(file_swap(root, "victim", secret)):
        for _ in range(2000):
            got = read("victim")
            if "ok" in got:
                leaked += SECRET.encode() in base64.b64decode(got["ok"]["data"])
            else:
                refusals += 1
            refusals += "error" in write("victim", b"X", append=True)
    assert leaked == 0
    assert secret.read_text() == SECRET
    assert refusals > 0  # the swap did race the calls


def test_a_folder_swapped_for_an_outward_link_is_never_entered(root: Path, outside: Path) -> None:
    (outside / "keep.txt").write_text("keep")
    (outside / "only-outside.txt").write_text("x")
    (root / "d").mkdir()
    (root / "d" / "secret.txt").write_text("inside")
    seen: list[str] = []
    with swapping(folder_swap(root, "d", outside)):
        for i in range(500):
            got = read("d/secret.txt")
            if "ok" in got:
                seen.append(base64.b64decode(got["ok"]["data"]).decode())
            seen.append(json.dumps(write(f"d/new-{i}.txt", b"x")))
            seen.append(json.dumps(write("d/secret.txt", b"X", append=True)))
            seen.append(json.dumps(op("delete", parts=["d", "keep.txt"], recursive=False)))
            listed = op("list", parts=["d"], pattern=None, recursive=True, limit=100, offset=0)
            seen.append(json.dumps(listed))
    assert not [s for s in seen if SECRET in s or "only-outside" in s]
    assert sorted(p.name for p in outside.iterdir()) == [
        "keep.txt",
        "only-outside.txt",
        "secret.txt",
    ]
    assert (outside / "secret.txt").read_text() == SECRET
    assert (outside / "keep.txt").read_text() == "keep"
