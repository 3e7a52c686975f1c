"""install_dependencies and list_installed_packages against real kernels and a real installer.

Most tests install a tiny wheel built here by hand (a zip with a module, METADATA, WHEEL and
RECORD) through the test-only `allow_local_package_paths`; it goes into the interpreter the
kernels use (this test run's own), so every one gets a unique name and is uninstalled at teardown.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services._envbuild import server_pins
from tests.helpers import argv_of, descendants

pytestmark = pytest.mark.anyio

EXAMPLES = (
    "Pass package names with optional extras and version specifiers, for example 'numpy', "
    "'pandas>=2.0' or 'requests[socks]==2.32.3'."
)

BASE_NOTE = (
    " They went into the server's base environment, shared by every session without an "
    "environment of its own (create_session with dependencies gives a session its own)."
)


def data(res: Any) -> dict[str, Any]:
    assert not res.is_error, res.content[0].text
    assert isinstance(res.structured_content, dict)
    return res.structured_content


def build_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel of module `name` whose VERSION is `version`, needing `requires`."""
    info = f"{name}-{version}.dist-info"
    needs = "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{needs}",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/top_level.txt": f"{name}\n",
    }
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={b64},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def uninstall(name: str) -> None:
    uv = shutil.which("uv")
    argv = (
        [uv, "pip", "uninstall", "--python", sys.executable, name]
        if uv
        else [sys.executable, "-m", "pip", "uninstall", "-y", name]
    )
    subprocess.run(argv, capture_output=True, timeout=60, check=False)


def child_cmdlines() -> list[str]:
    """Command lines of the live processes below this one (the in-memory server runs in it)."""
    return [" ".join(argv_of(pid)) for pid in descendants(os.getpid())]


@pytest.fixture
def local_config(config: ServerConfig) -> ServerConfig:
    return replace(config, allow_local_package_paths=True)


@pytest.fixture
def package_name() -> Iterator[str]:
    """A distribution name no one else uses, uninstalled from the kernels' interpreter after."""
    name = f"pms_probe_{uuid.uuid4().hex[:10]}"
    yield name
    uninstall(name)


async def test_a_local_wheel_installs_and_imports_in_the_running_session(
    local_config: ServerConfig, package_name: str
) -> None:
    wheel = build_wheel(local_config.workspace_root, package_name, "1.0")
    async with Client(create_server(local_config)) as client:
        before = data(await client.call_tool("run_python_code", {"code": f"import {package_name}"}))
        res = data(
            await client.call_tool("install_dependencies", {"packages": [f"./{wheel.name}"]})
        )
        after = data(
            await client.call_tool(
                "run_python_code", {"code": f"import {package_name}\n{package_name}.VERSION"}
            )
        )
    assert before["error"]["ename"] == "ModuleNotFoundError"
    assert (res["status"], res["restart_needed"], res["other_changes"]) == ("ok", False, [])
    assert res["packages"] == [
        {
            "requirement": f"./{wheel.name}",
            "name": package_name.replace("_", "-"),
            "status": "installed",
            "version": "1.0",
            "previous_version": None,
            "reason": None,
        }
    ]
    assert res["message"] == (
        "All packages are installed and importable in the running kernel." + BASE_NOTE
    )
    assert res["environment"] == "base"
    assert (after["status"], after["result"], after["execution_count"]) == ("ok", "'1.0'", 2)


async def test_installing_it_again_says_already_satisfied(
    local_config: ServerConfig, package_name: str
) -> None:
    wheel = build_wheel(local_config.workspace_root, package_name, "1.0")
    async with Client(create_server(local_config)) as client:
        await client.call_tool("install_dependencies", {"packages": [wheel.name]})
        res = data(await client.call_tool("install_dependencies", {"packages": [wheel.name]}))
    assert [(p["status"], p["version"]) for p in res["packages"]] == [("already_satisfied", "1.0")]


async def test_upgrading_an_imported_package_says_a_restart_is_needed(
    local_config: ServerConfig, package_name: str
) -> None:
    root = local_config.workspace_root
    old, new = build_wheel(root, package_name, "1.0"), build_wheel(root, package_name, "2.0")
    dist = package_name.replace("_", "-")
    async with Client(create_server(local_config)) as client:
        await client.call_tool("install_dependencies", {"packages": [old.name]})
        await client.call_tool("run_python_code", {"code": f"import {package_name}"})
        res = data(
            await client.call_tool(
                "install_dependencies", {"packages": [new.name], "upgrade": True}
            )
        )
    assert [(p["status"], p["version"], p["previous_version"]) for p in res["packages"]] == [
        ("upgraded", "2.0", "1.0")
    ]
    assert res["restart_needed"] is True
    assert res["message"] == (
        "All packages are installed and importable in the running kernel. Restart needed: "
        f"{dist} changed from 1.0 to 2.0 while {package_name} was already imported, so the "
        "kernel still runs the old code. Call restart_kernel (variables are lost) to use the "
        "new version." + BASE_NOTE
    )


SHELL = "shell metacharacters and environment markers are not accepted"
OPTION = "it looks like an installer option, and options such as --index-url or -e are not accepted"
LOCAL = "local paths and archive files are not accepted, only index packages"
URL = "URLs and direct references (name @ url) are not accepted"
BRACKET = "Expected matching RIGHT_BRACKET for LEFT_BRACKET, after extras"


@pytest.mark.parametrize(
    ("requirement", "rule"),
    [
        ("numpy; rm -rf /", f"it contains ';'; {SHELL}"),
        ("pkg && ls", f"it contains '&'; {SHELL}"),
        ("numpy`id`", f"it contains '`'; {SHELL}"),
        ("--index-url x", OPTION),
        ("-e .", OPTION),
        ("./pkg", LOCAL),
        ("pkg-1.0-py3-none-any.whl", LOCAL),
        ("https://x/y.whl", URL),
        ("pkg @ git+https://x/y", URL),
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("requests[socks", f"it is not a valid PEP 508 requirement ({BRACKET})"),
    ],
)
async def test_a_requirement_that_is_not_a_plain_package_is_refused(
    config: ServerConfig, requirement: str, rule: str
) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "install_dependencies", {"packages": ["six", requirement]}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == f"Requirement {requirement!r} is refused: {rule}. {EXAMPLES}"


async def test_an_empty_package_list_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("install_dependencies", {"packages": []}, raise_on_error=False)
    assert res.is_error
    assert res.content[0].text == f"No packages given. {EXAMPLES}"


async def test_a_local_path_outside_the_workspace_is_refused_even_when_allowed(
    local_config: ServerConfig,
) -> None:
    async with Client(create_server(local_config)) as client:
        res = await client.call_tool(
            "install_dependencies", {"packages": ["../elsewhere.whl"]}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "Path '../elsewhere.whl' is refused: its '..' parts lead outside the workspace. Use a "
        "path relative to the workspace root, for example 'data/input.csv'."
    )


async def test_installing_into_an_unknown_session_names_the_fix(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "install_dependencies",
            {"packages": ["six"], "session_id": "nope"},
            raise_on_error=False,
        )
    assert res.is_error
    assert res.content[0].text == (
        "No session 'nope'. Call list_sessions to see live sessions, or create_session to "
        "start one."
    )


async def test_an_installer_past_its_timeout_is_stopped_and_says_so(
    local_config: ServerConfig, package_name: str
) -> None:
    wheel = build_wheel(local_config.workspace_root, package_name, "1.0")
    async with Client(create_server(local_config)) as client:
        res = data(
            await client.call_tool(
                "install_dependencies", {"packages": [wheel.name], "timeout_s": 0.001}
            )
        )
    assert res["status"] == "timeout"
    assert res["message"] == (
        "The installer ran longer than 0.001 s and was stopped (its whole process group was "
        "killed). Try again with a larger timeout_s or fewer packages."
    )
    assert [(p["status"], p["reason"]) for p in res["packages"]] == [
        ("failed", "The installer timed out before this package was installed.")
    ]
    assert [cmd for cmd in child_cmdlines() if package_name in cmd] == []


async def test_installed_packages_come_from_the_kernels_interpreter(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = data(await client.call_tool("list_installed_packages", {}))
    versions = {p["name"]: p["version"] for p in res["packages"]}
    assert versions["numpy"] == importlib.metadata.version("numpy")
    assert versions["ipykernel"] == importlib.metadata.version("ipykernel")
    assert (res["python"], res["total"]) == (config.kernel_python, len(res["packages"]))


async def test_listing_packages_of_an_unknown_session_names_the_fix(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "list_installed_packages", {"session_id": "nope"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text.startswith("No session 'nope'.")


@pytest.mark.network
async def test_a_package_that_does_not_exist_fails_with_a_readable_reason(
    config: ServerConfig,
) -> None:
    missing = f"no-such-package-{uuid.uuid4().hex[:12]}"
    async with Client(create_server(config)) as client:
        res = data(await client.call_tool("install_dependencies", {"packages": [missing, "numpy"]}))
    assert res["status"] == "failed"
    assert res["packages"][1]["reason"].startswith(
        "Not installed, because the install as a whole failed: "
    )
    assert res["packages"][:1] == [
        {
            "requirement": missing,
            "name": missing,
            "status": "failed",
            "version": None,
            "previous_version": None,
            "reason": f"No package named {missing!r} was found in the package index. Check the "
            "spelling; the package name can differ from the import name (scikit-learn for "
            "sklearn).",
        }
    ]
    assert res["message"] == "2 of 2 packages were not installed."


@pytest.fixture
def six_absent() -> Iterator[None]:
    try:
        importlib.metadata.version("six")
    except importlib.metadata.PackageNotFoundError:
        yield
        uninstall("six")
    else:
        pytest.skip("six is already installed in the kernels' interpreter")


@pytest.mark.network
@pytest.mark.usefixtures("six_absent")
async def test_a_small_package_from_the_registry_installs_and_imports(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        res = data(await client.call_tool("install_dependencies", {"packages": ["six==1.17.0"]}))
        run = data(await client.call_tool("run_python_code", {"code": "import six\nsix.PY3"}))
    assert [(p["status"], p["version"]) for p in res["packages"]] == [("installed", "1.17.0")]
    assert (run["status"], run["result"]) == ("ok", "True")


def test_the_server_holds_what_it_runs_on_and_leaves_the_users_libraries() -> None:
    """The packages held in the base environment: the server's closure, extras followed (mcp,
    starlette and uvicorn come only through fastmcp-slim[client,server]), at their installed
    versions; numpy, pandas and matplotlib, there for the code kernels run, are not held."""
    pins = server_pins()
    for name in ("python-mcp-server", "fastmcp", "mcp", "starlette", "uvicorn", "pydantic", "idna"):
        assert pins[name] == importlib.metadata.version(name), name
    assert {"numpy", "pandas", "matplotlib"}.isdisjoint(pins)
    assert "pillow" in pins  # the server reads images itself, whatever matplotlib needs


async def test_a_base_install_cannot_change_a_package_the_server_runs_on(
    config: ServerConfig,
) -> None:
    held = importlib.metadata.version("idna")
    other = "3.7" if held != "3.7" else "3.6"
    async with Client(create_server(config)) as client:
        res = data(await client.call_tool("install_dependencies", {"packages": [f"idna=={other}"]}))
    assert importlib.metadata.version("idna") == held  # the server's environment is untouched
    assert res["status"] == "failed"
    fix = (
        "For another version, give a session an environment of its own: "
        f"create_session(dependencies=['idna=={other}'])."
    )
    assert res["packages"] == [
        {
            "requirement": f"idna=={other}",
            "name": "idna",
            "status": "failed",
            "version": held,
            "previous_version": None,
            "reason": f"idna is one of the packages the server itself runs on, kept at {held} in "
            f"the base environment (the server's own). {fix}",
        }
    ]
    assert res["message"] == (
        "1 of 1 packages were not installed. The base environment is the server's own, so the "
        "packages the server runs on keep their versions there; this install needed another "
        f"version of idna (kept at {held}). {fix}"
    )
    assert res["command"].endswith(" --constraint '<server-packages>'")


async def test_a_package_needing_another_version_of_a_held_one_is_refused_and_others_install(
    local_config: ServerConfig, package_name: str
) -> None:
    """A dependency's clash is named as well; a package that fits what is held installs."""
    held = importlib.metadata.version("idna")
    other = "3.7" if held != "3.7" else "3.6"
    root = local_config.workspace_root
    clashing = build_wheel(root, package_name, "1.0", requires=(f"idna=={other}",))
    async with Client(create_server(local_config)) as client:
        refused = data(
            await client.call_tool("install_dependencies", {"packages": [f"./{clashing.name}"]})
        )
        fitting = build_wheel(root, package_name, "2.0", requires=("idna",))
        installed = data(
            await client.call_tool("install_dependencies", {"packages": [f"./{fitting.name}"]})
        )
    assert importlib.metadata.version("idna") == held
    assert refused["status"] == "failed"
    assert f"this install needed another version of idna (kept at {held})" in refused["message"]
    assert [p["status"] for p in refused["packages"]] == ["failed"]
    assert installed["status"] == "ok", installed["output_tail"]
    assert [(p["status"], p["version"]) for p in installed["packages"]] == [("installed", "2.0")]
