"""Opening paths beneath the workspace root (`workspace.beneath`), on a real folder tree: links,
`..`, loops, fifos, magic links, and files swapped for links while the file tools use them."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from python_mcp_server.errors import (
    PathOutsideWorkspaceError,
)
from python_mcp_server.workspace._openat2 import Openat2
from python_mcp_server.workspace.beneath import Beneath
from python_mcp_server.workspace.paths import RULE_ROOT, RULE_SYMLINK

SECRET = "top secret"
HAS_OPENAT2 = Openat2().usable


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("a")
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(SECRET)
    return out.resolve()


@pytest.fixture(params=["openat2", "walk"])
def beneath(request: pytest.FixtureRequest, root: Path) -> Beneath:
    """Each test runs with openat2's fast path (where the kernel has it) and with the walk only."""
    if request.param == "openat2" and not HAS_OPENAT2:
        pytest.skip("this kernel has no openat2")
    return Beneath(root, use_openat2=request.param == "openat2")


def read(beneath: Beneath, path: str) -> tuple[str, bytes]:
    """The real path and the content of the file `path` names."""
    fd, real = beneath.open(path, [p for p in path.split("/") if p], os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        return "/".join(real), f.read()


def refused(path: str, rule: str) -> str:
    return str(PathOutsideWorkspaceError(path, rule))


# ------------------------------------------------------------------ the resolver


def test_a_plain_file_opens_with_its_real_path(beneath: Beneath) -> None:
    assert read(beneath, "data/a.txt") == ("data/a.txt", b"a")


def test_dot_dot_that_stays_inside_opens(beneath: Beneath) -> None:
    assert read(beneath, "data/sub/../a.txt") == ("data/a.txt", b"a")


def test_dot_dot_after_a_link_goes_back_where_the_link_led(beneath: Beneath, root: Path) -> None:
    (root / "to_sub").symlink_to("data/sub", target_is_directory=True)
    assert read(beneath, "to_sub/../a.txt") == ("data/a.txt", b"a")


def test_a_relative_link_that_climbs_out_is_refused(
    beneath: Beneath, root: Path, outside: Path
) -> None:
    (root / "data" / "up").symlink_to("../../outside/secret.txt")
    with pytest.raises(PathOutsideWorkspaceError) as err:
        read(beneath, "data/up")
    assert str(err.value) == refused("data/up", RULE_SYMLINK)


def test_an_absolute_link_outside_is_refused(beneath: Beneath, root: Path, outside: Path) -> None:
    (root / "leak").symlink_to(outside / "secret.txt")
    with pytest.raises(PathOutsideWorkspaceError) as err:
        read(beneath, "leak")
    assert str(err.value) == refused("leak", RULE_SYMLINK)


def test_an_absolute_link_inside_is_followed(beneath: Beneath, root: Path) -> None:
    (root / "alias").symlink_to(root / "data" / "a.txt")
    assert read(beneath, "alias") == ("data/a.txt", b"a")


def test_a_symlink_loop_ends_with_eloop(beneath: Beneath, root: Path) -> None:
    (root / "loop_a").symlink_to("loop_b")
    (root / "loop_b").symlink_to("loop_a")
    with pytest.raises(OSError, match="Too many levels of symbolic links") as err:
        read(beneath, "loop_a")
    assert err.value.errno == errno.ELOOP


def test_a_symlinked_folder_inside_is_walked_through(beneath: Beneath, root: Path) -> None:
    (root / "d").symlink_to(root / "data", target_is_directory=True)
    assert read(beneath, "d/a.txt") == ("data/a.txt", b"a")


def test_a_symlinked_folder_outside_is_refused_for_reads_and_creates(
    beneath: Beneath, root: Path, outside: Path
) -> None:
    (root / "d").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError):
        read(beneath, "d/secret.txt")
    with pytest.raises(PathOutsideWorkspaceError):
        beneath.create(["d", "new", "planted.txt"])
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_dangling_link_inside_is_created_through(beneath: Beneath, root: Path) -> None:
    (root / "later").symlink_to("data/new/later.txt")
    os.close(beneath.create(["later"]))
    assert (root / "data" / "new" / "later.txt").is_file()
    assert (root / "later").is_symlink()


def test_a_dangling_link_outside_is_not_created_through(
    beneath: Beneath, root: Path, outside: Path
) -> None:
    (root / "later").symlink_to(outside / "planted.txt")
    with pytest.raises(PathOutsideWorkspaceError):
        beneath.create(["later"])
    assert not (outside / "planted.txt").exists()


def test_links_into_proc_are_refused(beneath: Beneath, root: Path, outside: Path) -> None:
    # /proc's magic links (fd/N, root, cwd) jump wherever the process has them: never followed
    held = os.open(outside / "secret.txt", os.O_RDONLY)
    try:
        (root / "fd").symlink_to(f"/proc/self/fd/{held}")
        (root / "via_root").symlink_to(f"/proc/self/root{outside}/secret.txt")
        (root / "proc").symlink_to("/proc/self", target_is_directory=True)
        for path in ("fd", "via_root", "proc/cwd", f"proc/fd/{held}"):
            with pytest.raises(PathOutsideWorkspaceError) as err:
                read(beneath, path)
            assert str(err.value) == refused(path, RULE_SYMLINK)
    finally:
        os.close(held)


def test_a_link_to_the_root_is_not_a_file(beneath: Beneath, root: Path) -> None:
    (root / "self").symlink_to(root, target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError) as err:
        read(beneath, "self")
    assert str(err.value) == refused("self", RULE_ROOT)
    with pytest.raises(IsADirectoryError):
        read(beneath, "self/data")


def test_a_fifo_opens_without_blocking_and_is_not_read(beneath: Beneath, root: Path) -> None:
    os.mkfifo(root / "pipe")
    done: list[BaseException] = []

    def attempt() -> None:
        try:
            beneath.read(["pipe"], 100)
        except OSError as exc:
            done.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock it before failing
        os.close(os.open(root / "pipe", os.O_WRONLY | os.O_NONBLOCK))
    assert not worker.is_alive(), "reading a fifo blocked"
    assert [str(e) for e in done] == [f"[Errno {errno.EINVAL}] not a regular file: 'pipe'"]


def test_missing_folders_are_made_and_given_to_the_owner(root: Path) -> None:
    owner = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    beneath = Beneath(root)
    with beneath.locate("x/y/z.txt", ["x", "y", "z.txt"], make_parents=True, owner=owner) as t:
        assert (t.name, t.rel, t.stat) == ("z.txt", "x/y/z.txt", None)
    for folder in (root / "x", root / "x" / "y"):
        st = folder.stat()
        assert (st.st_uid, st.st_gid) == owner


def test_openat2_opens_only_beneath_and_without_links(root: Path, outside: Path) -> None:
    if not HAS_OPENAT2:
        pytest.skip("this kernel has no openat2")
    (root / "alias").symlink_to("data/a.txt")
    openat2 = Openat2()
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        os.close(openat2.open_no_links(fd, "data/a.txt", os.O_RDONLY))
        for path, code in (
            ("alias", errno.ELOOP),
            ("../outside/secret.txt", errno.EXDEV),
            (str(outside / "secret.txt"), errno.EXDEV),
            ("missing", errno.ENOENT),
        ):
            with pytest.raises(OSError, match=os.strerror(code)) as err:
                openat2.open_no_links(fd, path, os.O_RDONLY)
            assert err.value.errno == code, path
    finally:
        os.close(fd)
