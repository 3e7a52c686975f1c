"""The GitHub workflows in .github/workflows/ cannot run here: actionlint checks them (syntax,
expressions, the inputs of the actions they use, and their `run:` scripts through shellcheck),
and these tests check that they do what the project needs: every Python it claims, trusted
publishing on a tag, the docs on GitHub Pages. shellcheck also checks the repository's scripts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def actionlint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "actionlint"),
            "-no-color",
            "-oneline",
            "-shellcheck",
            str(BIN / "shellcheck"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )


def workflow(name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); keep it a string
    text = re.sub(r"^on:", '"on":', (WORKFLOWS / name).read_text(), flags=re.MULTILINE)
    return dict(yaml.safe_load(text))


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(f"{action}@")]


def test_actionlint_and_shellcheck_find_nothing_in_the_workflows() -> None:
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["ci.yml", "docs.yml", "release.yml"]
    result = actionlint(*sorted(str(p) for p in WORKFLOWS.glob("*.yml")))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    """The linter runs for real, with shellcheck: a wrong input, an unquoted variable and an
    untrusted expression in a script are each reported."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v5\n        with:\n          fetch-dept: 1\n"
        "      - run: echo $FOO ${{ github.event.head_commit.message }}\n"
    )
    result = actionlint(str(broken), cwd=tmp_path)
    assert result.returncode == 1
    assert '"fetch-dept" is not defined' in result.stdout
    assert "SC2086" in result.stdout
    assert "potentially untrusted" in result.stdout


def test_every_action_is_pinned_to_a_major_version_at_least() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(
                r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|release/v\d+|[0-9a-f]{40})", uses
            ), f"{path.name}: {uses}"


def test_ci_runs_every_python_the_package_claims_with_the_sandbox_and_a_browser() -> None:
    ci = workflow("ci.yml")
    assert ci["permissions"] == {"contents": "read"}
    (job,) = ci["jobs"].values()
    claimed = sorted(
        c.rsplit(" :: ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert job["strategy"]["matrix"]["python"] == claimed == ["3.11", "3.12", "3.13"]
    assert job["container"]["image"] == "python:${{ matrix.python }}-bookworm"
    assert job["env"]["CI"] == "true"
    script = "\n".join(str(s.get("run", "")) for s in job["steps"])
    for package in ("bubblewrap", "chromium", "chromium-driver"):
        assert re.search(rf"apt-get install .*\b{package}\b", script.replace("\\\n", "")), package
    for command in (
        "uv sync --locked",
        "uv run ruff check .",
        "uv run ruff format --check .",
        'uv run mypy --python-version "$PYTHON"',
        'uv run pytest -m "not slow"',
        "mkdocs build --strict",
    ):
        assert command in script, command


def test_a_tag_publishes_to_pypi_with_trusted_publishing_and_then_to_the_mcp_registry() -> None:
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read"}
    build, pypi, registry = (release["jobs"][k] for k in ("build", "pypi", "mcp-registry"))
    assert "uv build" in [s.get("run") for s in build["steps"]]
    assert pypi["needs"] == "build"
    assert pypi["environment"]["name"] == "pypi"
    assert pypi["permissions"] == {"id-token": "write"}
    (publish,) = steps_using(pypi, "pypa/gh-action-pypi-publish")
    assert "with" not in publish, "trusted publishing: no password, no token"
    assert registry["needs"] == "pypi"
    assert registry["permissions"]["id-token"] == "write"
    script = "\n".join(str(s.get("run", "")) for s in registry["steps"])
    assert "mcp-publisher login github-oidc" in script
    # the tag must be the version pyproject.toml and server.json carry
    check = "\n".join(str(s.get("run", "")) for s in build["steps"])
    assert "uv version --short" in check
    assert "server.json" in check


def test_the_docs_are_built_strictly_and_deployed_to_pages() -> None:
    docs = workflow("docs.yml")
    assert docs["on"]["push"] == {"branches": ["main"]}
    build, deploy = docs["jobs"]["build"], docs["jobs"]["deploy"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert "uv run --locked --group docs mkdocs build --strict --site-dir site" in runs
    (upload,) = steps_using(build, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "site"
    assert steps_using(deploy, "actions/deploy-pages")
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"


@pytest.mark.parametrize(
    "script", [".ci/run", "deploy/kubernetes/enterprise-gateway/post-render/post-render.sh"]
)
def test_shellcheck_finds_nothing_in_the_scripts(script: str) -> None:
    result = subprocess.run(
        [str(BIN / "shellcheck"), str(ROOT / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
