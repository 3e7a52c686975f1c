"""`parse_requirements` called directly: which strings `install_dependencies` accepts, what
reaches the installer's argv, and the exact refusal messages. No kernel, no installer."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from python_mcp_server.errors import PackageError, PathOutsideWorkspaceError
from python_mcp_server.services._requirements import (
    MAX_LENGTH,
    MAX_PACKAGES,
    Requested,
    parse_requirements,
)

EXAMPLES = (
    "Pass package names with optional extras and version specifiers, for example 'numpy', "
    "'pandas>=2.0' or 'requests[socks]==2.32.3'."
)
SHELL = "shell metacharacters and environment markers are not accepted"
OPTION = "it looks like an installer option, and options such as --index-url or -e are not accepted"
LOCAL = "local paths and archive files are not accepted, only index packages"
URL = "URLs and direct references (name @ url) are not accepted"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root.resolve()


def refusal(root: Path, raw: str) -> str:
    with pytest.raises(PackageError) as err:
        parse_requirements(["six", raw], root)
    return str(err.value)


def refused(raw: str, rule: str) -> str:
    return f"Requirement {raw!r} is refused: {rule}. {EXAMPLES}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("numpy", Requested(raw="numpy", argument="numpy", name="numpy")),
        ("pandas>=2.0", Requested(raw="pandas>=2.0", argument="pandas>=2.0", name="pandas")),
        (
            "requests[socks]==2.32.3",
            Requested(
                raw="requests[socks]==2.32.3",
                argument="requests[socks]==2.32.3",
                name="requests",
            ),
        ),
        (
            "  scikit-learn >= 1.4, < 2  ",
            Requested(
                raw="  scikit-learn >= 1.4, < 2  ",
                argument="scikit-learn<2,>=1.4",
                name="scikit-learn",
            ),
        ),
        (
            "Django_REST.framework~=3.15",
            Requested(
                raw="Django_REST.framework~=3.15",
                argument="Django_REST.framework~=3.15",
                name="django-rest-framework",
            ),
        ),
        ("pkg[b,a]", Requested(raw="pkg[b,a]", argument="pkg[a,b]", name="pkg")),
        ("numpy!=1.0.*", Requested(raw="numpy!=1.0.*", argument="numpy!=1.0.*", name="numpy")),
    ],
)
def test_a_pep_508_requirement_is_accepted_in_normal_form(
    root: Path, raw: str, expected: Requested
) -> None:
    assert parse_requirements([raw], root) == [expected]


def test_every_entry_is_kept_in_order(root: Path) -> None:
    assert [r.argument for r in parse_requirements(["b", "a", "c==1"], root)] == [
        "b",
        "a",
        "c==1",
    ]


def test_duplicates_are_passed_on_as_given(root: Path) -> None:
    assert parse_requirements(["six", "Six", "six"], root) == [
        Requested(raw="six", argument="six", name="six"),
        Requested(raw="Six", argument="Six", name="six"),
        Requested(raw="six", argument="six", name="six"),
    ]


def test_an_empty_list_is_refused(root: Path) -> None:
    with pytest.raises(PackageError) as err:
        parse_requirements([], root)
    assert str(err.value) == f"No packages given. {EXAMPLES}"


def test_the_maximum_number_of_packages_is_accepted(root: Path) -> None:
    assert len(parse_requirements([f"pkg{i}" for i in range(MAX_PACKAGES)], root)) == 50


def test_too_many_packages_are_refused_before_any_is_checked(root: Path) -> None:
    with pytest.raises(PackageError) as err:
        parse_requirements(["--bad"] * (MAX_PACKAGES + 1), root)
    assert str(err.value) == "51 packages given; at most 50 per call. Split the list."


def test_a_requirement_at_the_length_limit_is_accepted(root: Path) -> None:
    name = "a" * MAX_LENGTH
    assert parse_requirements([name], root)[0].name == name


def test_an_overlong_requirement_is_refused_and_shown_cut(root: Path) -> None:
    raw = "a" * (MAX_LENGTH + 1)
    assert refusal(root, raw) == refused("a" * 40 + "...", "it is longer than 200 characters")


def test_the_first_bad_entry_is_the_one_named(root: Path) -> None:
    with pytest.raises(PackageError) as err:
        parse_requirements(["six", "-e .", "a;b"], root)
    assert str(err.value) == refused("-e .", OPTION)


@pytest.mark.parametrize(
    "raw",
    ["--index-url https://evil.example/simple", "-e .", "-r requirements.txt", "--pre", " -U x"],
)
def test_installer_options_are_refused(root: Path, raw: str) -> None:
    assert refusal(root, raw) == refused(raw, OPTION)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("numpy; rm -rf /", "';'"),
        ("numpy;python_version<'3.8'", "\"'\" ';'"),
        ("pkg|cat", "'|'"),
        ("pkg && ls", "'&'"),
        ("pkg$HOME", "'$'"),
        ("pkg`id`", "'`'"),
        ("pkg$(id)", "'$' '(' ')'"),
        ("pkg\\x", "'\\\\'"),
        ('pkg"', "'\"'"),
        ("pkg{a}", "'{' '}'"),
        ("pkg#frag", "'#'"),
        ("pkg\nnumpy", "'\\n'"),
        ("pkg\rx", "'\\r'"),
        ("pkg\tx", "'\\t'"),
        ("pkg\x00", "'\\x00'"),
    ],
)
def test_shell_metacharacters_are_refused_and_named(root: Path, raw: str, shown: str) -> None:
    assert refusal(root, raw) == refused(raw, f"it contains {shown}; {SHELL}")


@pytest.mark.parametrize(
    "raw",
    [
        "https://example.com/pkg.whl",
        "git+https://github.com/x/y",
        "pkg @ https://example.com/pkg.whl",
        "pkg@file:///tmp/pkg",
        "user@host",
    ],
)
def test_urls_and_direct_references_are_refused(root: Path, raw: str) -> None:
    assert refusal(root, raw) == refused(raw, URL)


@pytest.mark.parametrize(
    "raw", ["./pkg", "../pkg", ".", "dir/pkg", "pkg-1.0-py3-none-any.whl", "pkg.tar.gz", "P.ZIP"]
)
def test_paths_and_archives_are_refused_by_default(root: Path, raw: str) -> None:
    assert refusal(root, raw) == refused(raw, LOCAL)


def parser_reason(raw: str) -> str:
    """The first line of packaging's own complaint, which the refusal quotes."""
    with pytest.raises(InvalidRequirement) as err:
        Requirement(raw.strip())
    return str(err.value).splitlines()[0]


@pytest.mark.parametrize("raw", ["requests[socks", "numpy >= ", "pkg name", "==1.0", "pkg[a b]"])
def test_malformed_requirements_are_refused_with_the_parser_reason(root: Path, raw: str) -> None:
    reason = parser_reason(raw)
    assert refusal(root, raw) == refused(raw, f"it is not a valid PEP 508 requirement ({reason})")


def test_the_parser_reason_is_its_first_line_only(root: Path) -> None:
    assert refusal(root, "requests[socks") == refused(
        "requests[socks",
        "it is not a valid PEP 508 requirement "
        "(Expected matching RIGHT_BRACKET for LEFT_BRACKET, after extras)",
    )


@pytest.mark.parametrize("raw", ["", " ", "\u00a0"])
def test_blank_requirements_are_refused(root: Path, raw: str) -> None:
    assert refusal(root, raw) == refused(raw, "it is empty")


# allow_local_paths (the test-only allowance)


def test_a_wheel_inside_the_workspace_is_accepted_when_allowed(root: Path) -> None:
    (root / "dist").mkdir()
    wheel = root / "dist" / "My_Pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert parse_requirements(["dist/My_Pkg-1.0-py3-none-any.whl"], root, True) == [
        Requested(
            raw="dist/My_Pkg-1.0-py3-none-any.whl",
            argument=str(wheel),
            name="my-pkg",
        )
    ]


def test_a_project_folder_inside_the_workspace_is_accepted_without_a_name(root: Path) -> None:
    (root / "proj").mkdir()
    assert parse_requirements(["./proj"], root, True) == [
        Requested(raw="./proj", argument=str(root / "proj"), name=None)
    ]


def test_a_missing_local_path_is_refused(root: Path) -> None:
    with pytest.raises(PackageError) as err:
        parse_requirements(["./missing"], root, True)
    assert str(err.value) == refused("./missing", "no such file or folder in the workspace")


def test_a_badly_named_wheel_is_refused(root: Path) -> None:
    (root / "notawheel.whl").write_bytes(b"")
    with pytest.raises(PackageError) as err:
        parse_requirements(["notawheel.whl"], root, True)
    assert str(err.value) == refused("notawheel.whl", "it is not a valid wheel file name")


def test_a_local_path_outside_the_workspace_is_refused_even_when_allowed(root: Path) -> None:
    (root.parent / "elsewhere.whl").write_bytes(b"")
    with pytest.raises(PathOutsideWorkspaceError) as err:
        parse_requirements(["../elsewhere.whl"], root, True)
    assert str(err.value) == (
        "Path '../elsewhere.whl' is refused: its '..' parts lead outside the workspace. Use a "
        "path relative to the workspace root, for example 'data/input.csv'."
    )


def test_options_are_refused_even_when_local_paths_are_allowed(root: Path) -> None:
    with pytest.raises(PackageError) as err:
        parse_requirements(["-e ./proj"], root, True)
    assert str(err.value) == refused("-e ./proj", OPTION)
