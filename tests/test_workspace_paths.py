"""resolve_inside, called directly on a real folder tree under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_mcp_server.errors import PathOutsideWorkspaceError
from python_mcp_server.workspace.paths import (
    RULE_ABSOLUTE,
    RULE_EMPTY,
    RULE_NUL,
    RULE_PARENT,
    RULE_ROOT,
    RULE_SYMLINK,
    relative_name,
    resolve_inside,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("a")
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("secret")
    return out.resolve()


def refused(path: str, rule: str) -> str:
    return (
        f"Path {path!r} is refused: {rule}. Use a path relative to the workspace root, "
        "for example 'data/input.csv'."
    )


def test_a_relative_path_resolves_inside_the_root(root: Path) -> None:
    assert resolve_inside(root, "data/a.txt") == root / "data" / "a.txt"


def test_a_path_that_does_not_exist_yet_still_resolves(root: Path) -> None:
    assert resolve_inside(root, "new/dir/file.bin") == root / "new" / "dir" / "file.bin"


def test_dot_dot_that_stays_inside_is_allowed(root: Path) -> None:
    assert resolve_inside(root, "data/../data/a.txt") == root / "data" / "a.txt"


def test_dot_dot_leading_outside_is_refused(root: Path) -> None:
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "data/../../etc/passwd")
    assert str(err.value) == refused("data/../../etc/passwd", RULE_PARENT)


def test_an_absolute_path_inside_the_root_is_allowed(root: Path) -> None:
    assert resolve_inside(root, str(root / "data" / "a.txt")) == root / "data" / "a.txt"


def test_an_absolute_path_outside_the_root_is_refused(root: Path) -> None:
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "/etc/passwd")
    assert str(err.value) == refused("/etc/passwd", RULE_ABSOLUTE)


def test_a_sibling_folder_sharing_the_root_prefix_is_outside(root: Path) -> None:
    sibling = root.parent / (root.name + "-other")
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, str(sibling / "x"))
    assert str(err.value) == refused(str(sibling / "x"), RULE_ABSOLUTE)


def test_a_symlinked_file_pointing_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "leak.txt")
    assert str(err.value) == refused("leak.txt", RULE_SYMLINK)


def test_a_file_under_a_symlinked_folder_pointing_outside_is_refused(
    root: Path, outside: Path
) -> None:
    (root / "data" / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "data/out/secret.txt")
    assert str(err.value) == refused("data/out/secret.txt", RULE_SYMLINK)


def test_a_new_file_under_a_symlinked_folder_pointing_outside_is_refused(
    root: Path, outside: Path
) -> None:
    (root / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError):
        resolve_inside(root, "out/new/file.txt")


def test_a_dangling_symlink_pointing_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "dangling").symlink_to(outside / "not-yet")
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "dangling")
    assert str(err.value) == refused("dangling", RULE_SYMLINK)


def test_dot_dot_after_an_outward_link_is_judged_where_it_really_goes(
    root: Path, outside: Path
) -> None:
    (outside / "sub").mkdir()
    (root / "link").symlink_to(outside / "sub", target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "link/../secret.txt")
    assert str(err.value) == refused("link/../secret.txt", RULE_SYMLINK)


def test_a_chain_of_links_ending_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "hop2").symlink_to(outside / "secret.txt")
    (root / "hop1").symlink_to(root / "hop2")
    with pytest.raises(PathOutsideWorkspaceError):
        resolve_inside(root, "hop1")


def test_a_symlink_pointing_inside_resolves_to_its_target(root: Path) -> None:
    (root / "alias").symlink_to(root / "data" / "a.txt")
    assert resolve_inside(root, "alias") == root / "data" / "a.txt"


def test_without_following_the_last_part_a_link_is_returned_as_itself(
    root: Path, outside: Path
) -> None:
    (root / "data" / "leak").symlink_to(outside / "secret.txt")
    assert resolve_inside(root, "data/leak", follow_last=False) == root / "data" / "leak"


def test_without_following_the_last_part_an_outward_parent_link_is_still_refused(
    root: Path, outside: Path
) -> None:
    (root / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "out/secret.txt", follow_last=False)
    assert str(err.value) == refused("out/secret.txt", RULE_SYMLINK)


def test_a_nul_byte_is_refused(root: Path) -> None:
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "data/a.txt\x00.png")
    assert str(err.value) == refused("data/a.txt\x00.png", RULE_NUL)


def test_an_empty_path_is_the_root_when_no_name_is_needed(root: Path) -> None:
    assert resolve_inside(root, "") == root
    assert resolve_inside(root, ".") == root


def test_an_empty_path_is_refused_where_a_name_is_needed(root: Path) -> None:
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "  ", need_name=True)
    assert str(err.value) == refused("  ", RULE_EMPTY)


def test_the_root_itself_is_refused_where_a_name_is_needed(root: Path) -> None:
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "data/..", need_name=True)
    assert str(err.value) == refused("data/..", RULE_ROOT)


def test_a_link_to_the_root_is_refused_where_a_name_is_needed(root: Path) -> None:
    (root / "self").symlink_to(root, target_is_directory=True)
    with pytest.raises(PathOutsideWorkspaceError) as err:
        resolve_inside(root, "self", need_name=True)
    assert str(err.value) == refused("self", RULE_ROOT)


def test_a_root_given_through_a_symlink_is_compared_by_its_real_path(
    root: Path, tmp_path: Path
) -> None:
    via = tmp_path / "via"
    via.symlink_to(root, target_is_directory=True)
    assert resolve_inside(via, "data/a.txt") == root / "data" / "a.txt"


def test_relative_name_uses_slashes_and_dot_for_the_root(root: Path) -> None:
    assert relative_name(root, root / "data" / "a.txt") == "data/a.txt"
    assert relative_name(root, root) == "."
