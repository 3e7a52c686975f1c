"""server.json, the manifest the MCP registry publishes: it matches the registry's schema, names
the package and version pyproject.toml builds and the README's `mcp-name` marker, and every flag,
environment variable, default and choice in it is one the CLI really has.

The schema is vendored, byte for byte, in tests/fixtures/mcp_registry/server.schema.json from
https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json (the registry keeps
the same file as internal/validators/schemas/2025-12-11.json in
github.com/modelcontextprotocol/registry). A newer schema: vendor it and change `$schema`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperOption
from typer.testing import CliRunner

from python_mcp_server.auth_token import TOKEN_ENV
from python_mcp_server.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "fixtures" / "mcp_registry" / "server.schema.json"
MANIFEST: dict[str, Any] = json.loads((ROOT / "server.json").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLI_OPTIONS = [p for p in typer.main.get_command(app).params if isinstance(p, TyperOption)]
PACKAGES: list[dict[str, Any]] = MANIFEST["packages"]


def cli_envvars() -> set[str]:
    names: set[str] = set()
    for option in CLI_OPTIONS:
        envvar = option.envvar
        names.update([envvar] if isinstance(envvar, str) else envvar or ())
    return names


def cli_flags() -> set[str]:
    return {flag for option in CLI_OPTIONS for flag in [*option.opts, *option.secondary_opts]}


def resolved(args: list[str], env: dict[str, str | None] | None = None) -> dict[str, Any]:
    """The configuration the CLI makes of these arguments and variables (and nothing else of the
    environment that runs the tests)."""
    clean: dict[str, str | None] = dict.fromkeys(cli_envvars())
    clean[TOKEN_ENV] = None
    result = CliRunner().invoke(app, [*args, "--show-config"], env={**clean, **(env or {})})
    assert result.exit_code == 0, f"{args} {env}: {result.output}"
    return dict(json.loads(result.stdout))


def package_argv(package: dict[str, Any]) -> list[str]:
    """The command line a client builds from the package's arguments, with their values or
    defaults."""
    argv = []
    for argument in package.get("packageArguments", []):
        assert argument["type"] == "named", "the server takes no positional arguments"
        argv += [argument["name"], argument.get("value", argument.get("default"))]
    return argv


def test_server_json_matches_the_registry_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert MANIFEST["$schema"] == schema["$id"]
    check = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(check), "--schemafile", str(SCHEMA), str(ROOT / "server.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_manifest_the_registry_would_refuse(tmp_path: Path) -> None:
    broken = {**MANIFEST, "name": "no-slash", "packages": [{"registryType": "pypi"}]}
    (tmp_path / "server.json").write_text(json.dumps(broken))
    check = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(check), "--schemafile", str(SCHEMA), str(tmp_path / "server.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "'no-slash' does not match" in result.stdout


def test_the_name_is_the_readme_marker_the_registry_checks_on_pypi() -> None:
    """The registry proves ownership of a PyPI package by finding `mcp-name: <name>` in the
    README PyPI shows, which is pyproject's `readme`."""
    assert PROJECT["readme"] == "README.md"
    markers = re.findall(r"<!-- mcp-name: (\S+) -->", (ROOT / "README.md").read_text())
    assert markers == [MANIFEST["name"]]
    assert MANIFEST["name"] == "io.github.python-mcp-server/python-mcp-server"
    assert MANIFEST["repository"] == {
        "url": "https://github.com/python-mcp-server/python-mcp-server",
        "source": "github",
    }


def test_the_versions_and_the_package_are_the_ones_pyproject_builds() -> None:
    assert MANIFEST["version"] == PROJECT["version"]
    assert len(PACKAGES) == 2
    for package in PACKAGES:
        assert package["registryType"] == "pypi"
        assert package["registryBaseUrl"] == "https://pypi.org"
        assert package["identifier"] == PROJECT["name"]
        assert package["version"] == PROJECT["version"]
        assert package["runtimeHint"] == "uvx"
    assert "python-mcp-server" in PROJECT["scripts"], "uvx runs the script named as the package"


def test_every_environment_variable_named_is_one_the_cli_reads() -> None:
    known = cli_envvars()
    for package in PACKAGES:
        names = [v["name"] for v in package["environmentVariables"]]
        assert len(names) == len(set(names))
        assert [n for n in names if n not in known] == []
        assert TOKEN_ENV not in names, "a token belongs in a file, not in a client's config"


def test_every_argument_named_is_a_flag_the_cli_has() -> None:
    flags = cli_flags()
    for package in PACKAGES:
        names = [a["name"] for a in package["packageArguments"]]
        assert [n for n in names if n not in flags] == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p["transport"]["type"]))
def test_each_package_runs_the_transport_it_declares(package: dict[str, Any]) -> None:
    config = resolved(package_argv(package))
    transport = package["transport"]
    if transport["type"] == "stdio":
        assert config["transport"] == "stdio"
        return
    assert transport["type"] == "streamable-http"
    assert config["transport"] == "http"
    # the URL's {--port} is the --port argument; with its default it is the server's address
    (port,) = [a for a in package["packageArguments"] if a["name"] == "--port"]
    url = transport["url"].replace("{--port}", port["default"])
    assert url == f"http://{config['host']}:{config['port']}{config['path']}"
    names = {h["name"] for h in transport["headers"]}
    assert names == {"Authorization"}
    env_names = {v["name"] for v in package["environmentVariables"]}
    assert "PYTHON_MCP_SERVER_AUTH_TOKEN_FILE" in env_names


def test_stated_defaults_are_the_cli_defaults_and_every_choice_is_accepted() -> None:
    baseline = resolved([])
    checked = 0
    for package in PACKAGES:
        for variable in package["environmentVariables"]:
            name = variable["name"]
            if "default" in variable:
                assert resolved([], {name: variable["default"]}) == baseline, name
                checked += 1
            for choice in variable.get("choices", []):
                resolved([], {name: choice})
                checked += 1
            assert variable["description"], name
    assert checked >= 10
