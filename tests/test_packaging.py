"""What the published package carries: the licence text in the wheel and the sdist, `py.typed`,
the project URLs, and a README whose links work where PyPI shows it (no relative links).

The wheel and the sdist are built for real with uv's build backend (about a second).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from uv import find_uv_bin

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPO_URL = "https://github.com/python-mcp-server/python-mcp-server"
# the two forms GitHub serves a file of the main branch in: as a page, and as raw bytes (images)
FILE_URL = re.compile(
    r"https://(?:github\.com/python-mcp-server/python-mcp-server/blob/main"
    r"|raw\.githubusercontent\.com/python-mcp-server/python-mcp-server/main)/([^)#?\s]+)"
)
RAW_PREFIX = "https://raw.githubusercontent.com/python-mcp-server/"
# [text](target) and ![alt](target), and the HTML forms markdown allows
LINK = re.compile(r"\]\(([^)\s]+)\)|(?:href|src)=\"([^\"]+)\"")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [find_uv_bin(), "build", "--no-sources", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def wheel_metadata(wheel: Path) -> tuple[zipfile.ZipFile, str]:
    archive = zipfile.ZipFile(wheel)
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    return archive, archive.read(metadata).decode()


def test_the_wheel_carries_the_licence_text(dists: tuple[Path, Path]) -> None:
    archive, metadata = wheel_metadata(dists[0])
    licences = [n for n in archive.namelist() if ".dist-info/licenses/" in n and n[-1] != "/"]
    assert [n.rsplit("/", 1)[1] for n in licences] == ["LICENSE"]
    assert archive.read(licences[0]).decode() == (ROOT / "LICENSE").read_text()
    headers = Parser().parsestr(metadata, headersonly=True)
    assert headers["License-Expression"] == "MIT"
    assert headers.get_all("License-File") == ["LICENSE"]


def test_the_sdist_carries_the_licence_text(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[1]) as archive:
        (member,) = [m for m in archive.getmembers() if m.name.endswith("/LICENSE")]
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read().decode() == (ROOT / "LICENSE").read_text()


def test_the_licence_is_mit_for_the_developers() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 python-mcp-server developers\n")
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_the_wheel_is_typed(dists: tuple[Path, Path]) -> None:
    archive, metadata = wheel_metadata(dists[0])
    assert "python_mcp_server/py.typed" in archive.namelist()
    assert "Classifier: Typing :: Typed" in metadata


def test_the_project_urls_reach_the_repository_and_the_docs(dists: tuple[Path, Path]) -> None:
    _, metadata = wheel_metadata(dists[0])
    urls = dict(
        value.split(", ", 1)
        for value in Parser().parsestr(metadata, headersonly=True).get_all("Project-URL", [])
    )
    assert urls == {
        "Homepage": REPO_URL,
        "Documentation": "https://python-mcp-server.github.io/python-mcp-server/",
        "Repository": REPO_URL,
        "Issues": f"{REPO_URL}/issues",
        "Changelog": f"{REPO_URL}/blob/main/CHANGELOG.md",
    }
    assert (ROOT / "CHANGELOG.md").is_file()


def test_the_wheel_long_description_is_the_readme(dists: tuple[Path, Path]) -> None:
    _, metadata = wheel_metadata(dists[0])
    message = Parser().parsestr(metadata)
    assert message["Description-Content-Type"] == "text/markdown"
    assert message.get_payload() == (ROOT / "README.md").read_text()


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub (and PyPI) give a file's headings: lower case, punctuation dropped,
    spaces as hyphens; a repeated heading gets -1, -2, ..."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not (found := re.match(r"#{1,6} (.+)", line)):
            continue
        slug = re.sub(r"[^\w\- ]", "", found.group(1).strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def link_problems(markdown: str) -> list[str]:
    """What in `markdown` would break where PyPI shows it: every link must be absolute or an
    anchor of the text itself; every link into this repository must name a file of the main
    branch that exists, and a heading in it when it names one."""
    own_anchors = heading_anchors(markdown)
    problems = []
    for a, b in LINK.findall(markdown):
        link = a or b
        if link.startswith("#"):
            if link[1:] not in own_anchors:
                problems.append(f"{link}: no such heading in README.md")
            continue
        if not link.startswith(("https://", "http://", "mailto:")):
            problems.append(
                f"{link}: relative; write {REPO_URL}/blob/main/{link} so that it works on PyPI"
            )
            continue
        found = FILE_URL.match(link)
        if found is None:
            if link.startswith((f"{REPO_URL}/blob/", RAW_PREFIX)):
                problems.append(f"{link}: link to the main branch ({REPO_URL}/blob/main/...)")
            continue
        target = ROOT / found.group(1)
        if not target.is_file():
            problems.append(f"{link}: {found.group(1)} is not a file in the repository")
        elif "#" in link and target.suffix == ".md":
            anchor = link.split("#", 1)[1]
            if anchor not in heading_anchors(target.read_text()):
                problems.append(f"{link}: {found.group(1)} has no heading #{anchor}")
    return problems


def test_the_readme_links_work_on_pypi() -> None:
    """PyPI shows the README away from the repository, where a relative link leads nowhere."""
    readme = (ROOT / "README.md").read_text()
    assert len(LINK.findall(readme)) >= 10
    assert link_problems(readme) == []


def test_the_link_check_names_each_link_that_would_break() -> None:
    blob = f"{REPO_URL}/blob/main"
    markdown = (
        "# Top\n## Usage\n```\n# a comment, not a heading\n```\n"
        "[ok](#usage) [ok](#top) [ok](https://example.org/x) "
        f"[ok]({blob}/docs/security.md#packages) [ok]({blob}/LICENSE) "
        '[a](#a-comment-not-a-heading) [b](docs/security.md) <img src="bench/plot.png"> '
        f"[c]({blob}/docs/nowhere.md) [d]({blob}/docs/security.md#nowhere) "
        f"[e]({REPO_URL}/blob/v1.0/README.md)"
    )
    assert link_problems(markdown) == [
        "#a-comment-not-a-heading: no such heading in README.md",
        f"docs/security.md: relative; write {blob}/docs/security.md so that it works on PyPI",
        f"bench/plot.png: relative; write {blob}/bench/plot.png so that it works on PyPI",
        f"{blob}/docs/nowhere.md: docs/nowhere.md is not a file in the repository",
        f"{blob}/docs/security.md#nowhere: docs/security.md has no heading #nowhere",
        f"{REPO_URL}/blob/v1.0/README.md: link to the main branch ({blob}/...)",
    ]
    assert heading_anchors("## The token\n## The token\n") == {"the-token", "the-token-1"}


def test_the_changelog_has_the_package_version_and_an_unreleased_section() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings[:2] == ["Unreleased", PYPROJECT["project"]["version"]]


def test_contributing_names_every_test_marker() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    markers = [m.split(":")[0] for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]]
    assert [m for m in markers if f"| `{m}` |" not in text] == []


@pytest.mark.parametrize("name", ["CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md"])
def test_the_root_documents_link_to_files_that_exist(name: str) -> None:
    """These are read on GitHub, where a relative link works when its file exists."""
    problems = []
    for a, b in LINK.findall((ROOT / name).read_text()):
        link = (a or b).split("#")[0]
        if link and not link.startswith(("https://", "http://")) and not (ROOT / link).exists():
            problems.append(link)
        found = FILE_URL.match(link)
        if found is not None and not (ROOT / found.group(1)).is_file():
            problems.append(link)
    assert problems == []


def installed_closure(root: str) -> set[str]:
    """The distributions installing `root` brings, as its metadata declares them (extras a
    requirement asks for included, the root's own extras not)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = distribution(key[0]).requires or []
        except PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            wanted = ["", *extras]
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


def imported_modules(package: Path) -> dict[str, set[str]]:
    """Top-level names of the third-party modules the package's code imports, with the files."""
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top not in sys.stdlib_module_names and top != "python_mcp_server":
                    found.setdefault(top, set()).add(path.name)
    return found


def test_every_module_the_package_imports_comes_with_its_dependencies() -> None:
    """`pip install python-mcp-server` alone must give the server what it imports: a module that
    only the dev group installs passes every other test and fails for a user at start."""
    closure = installed_closure(PYPROJECT["project"]["name"])
    owners = packages_distributions()
    missing = {
        top: sorted(files)
        for top, files in imported_modules(ROOT / "src" / "python_mcp_server").items()
        if not {canonicalize_name(d) for d in owners.get(top, [])} & closure
    }
    assert missing == {}, "add these to [project] dependencies in pyproject.toml"
