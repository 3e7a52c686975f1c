"""Per-session environments (`create_session(dependencies=..., python=...)`), against real kernels
and a real uv.

Packages come from wheels built here into a find-links folder, and uv runs offline
(`UV_OFFLINE`), so these tests need no registry: the kernel runtime layer is found in uv's cache,
where installing this project put it. One environment folder serves the whole module, so the
runtime layer is built once; tests that remove layers use a folder of their own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from python_mcp_server.services.environments import EnvironmentStore
from tests.conftest import sandboxed
from tests.helpers import argv_of, call, descendants, error
from tests.test_packages import build_wheel

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PATHS = "import sys\nprint([p for p in sys.path if 'layers' in p or 'venvs' in p])"


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A find-links folder uv reads instead of the index (offline); one for the module, since
    the index settings are part of every layer's hash."""
    folder = tmp_path_factory.mktemp("wheels")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_FIND_LINKS", str(folder))
        patch.setenv("UV_OFFLINE", "1")
        yield folder


@pytest.fixture
def name() -> str:
    return f"pmsenv_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env_config(config: ServerConfig, env_dir: Path) -> ServerConfig:
    return replace(config, env_dir=env_dir, allow_local_package_paths=True)


async def run(client: Client[Any], session_id: str, code: str) -> dict[str, Any]:
    return await call(client, "run_python_code", session_id=session_id, code=code)


def layers(env_dir: Path) -> list[str]:
    folder = env_dir / "layers"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def venvs(env_dir: Path) -> list[str]:
    folder = env_dir / "venvs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def runtime_layers(env_dir: Path) -> list[str]:
    """The complete kernel runtime layers in `env_dir` (a layer appears with its manifest)."""
    found = []
    for manifest in sorted((env_dir / "layers").glob("*/manifest.json")):
        try:
            kind = json.loads(manifest.read_text()).get("kind")
        except (OSError, ValueError):
            continue
        if kind == "runtime":
            found.append(manifest.parent.name)
    return found


def builds_running() -> list[int]:
    """The layer builds (`uv pip install --target`) running below this process."""
    return [p for p in descendants(os.getpid()) if "--target" in argv_of(p)]


@pytest.fixture
async def runtime_key(env_config: ServerConfig, wheels: Path) -> str:
    """The module folder's kernel runtime layer, made if missing, as a server would at start."""
    store = EnvironmentStore(env_config, plan_sandbox(env_config))
    layer = await store.prepare()
    assert layer is not None
    return layer.key


async def test_a_session_gets_its_dependencies_and_the_base_does_not(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    async with Client(create_server(env_config)) as client:
        info = await call(client, "create_session", session_id="own", dependencies=[name])
        mine = await run(client, "own", f"import {name}\n{name}.VERSION")
        base = await run(client, "default", f"import {name}")
        listed = await call(client, "list_installed_packages", session_id="own")
    assert (info["environment"], info["dependencies"]) == ("own", [name])
    assert (mine["status"], mine["result"]) == ("ok", "'1.0'")
    assert base["error"]["ename"] == "ModuleNotFoundError"
    names = {p["name"].lower().replace("_", "-") for p in listed["packages"]}
    assert {name.replace("_", "-"), "ipykernel"} <= names
    assert "fastmcp" not in names  # the server's own packages stay out


async def test_sessions_asking_for_the_same_packages_share_one_layer(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    before = set(layers(env_config.env_root))
    async with Client(create_server(env_config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[name])
        await call(client, "create_session", session_id="b", dependencies=[name])
        a = await run(client, "a", PATHS)
        b = await run(client, "b", PATHS)
    a_paths, b_paths = eval(a["stdout"]), eval(b["stdout"])
    assert a_paths[0] != b_paths[0]  # each its own venv
    assert a_paths[1:] == b_paths[1:]  # the same layers behind
    assert len(set(layers(env_config.env_root)) - before) == 1  # one new layer for both


async def test_installs_go_into_the_sessions_own_environment_only(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    wheel = build_wheel(env_config.workspace_root, name, "1.0")
    async with Client(create_server(env_config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[])
        await call(client, "create_session", session_id="b", dependencies=[])
        res = await call(client, "install_dependencies", session_id="a", packages=[wheel.name])
        in_a = await run(client, "a", f"import {name}\n{name}.VERSION")
        in_b = await run(client, "b", f"import {name}")
        in_base = await run(client, "default", f"import {name}")
    assert (res["status"], res["environment"]) == ("ok", "own")
    assert "own environment" in res["message"]
    assert in_a["result"] == "'1.0'"
    assert in_b["error"]["ename"] == "ModuleNotFoundError"
    assert in_base["error"]["ename"] == "ModuleNotFoundError"


@pytest.mark.skipif(not sandboxed(), reason="the read-only mount is the sandbox's")
async def test_the_kernel_cannot_write_its_environment(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    code = (
        "import sys\nbad = []\n"
        "for p in sys.path:\n"
        "    if 'venvs' in p or 'layers' in p:\n"
        "        try:\n"
        "            open(p + '/planted.py', 'w')\n"
        "            bad.append(p)\n"
        "        except OSError:\n"
        "            pass\n"
        "bad"
    )
    async with Client(create_server(env_config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[name])
        res = await run(client, "a", code)
    assert res["result"] == "[]"


async def test_a_missing_package_names_it_and_leaves_nothing_behind(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    async with Client(create_server(env_config)) as client:
        before = venvs(env_config.env_root)
        message = await error(client, "create_session", session_id="x", dependencies=[name])
        sessions = await call(client, "list_sessions")
        after = venvs(env_config.env_root)
        again = await call(client, "create_session", session_id="x")
    assert f"No package named {name.replace('_', '-')!r}" in message
    assert "check the spelling" in message
    assert [s["session_id"] for s in sessions["sessions"]] == []
    assert after == before
    assert again["environment"] == "base"


async def test_a_version_that_does_not_exist_and_a_conflict_say_so(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    dist = name.replace("_", "-")
    async with Client(create_server(env_config)) as client:
        missing = await error(client, "create_session", dependencies=[f"{name}==9.9"])
        conflict = await error(client, "create_session", dependencies=[f"{name}<1", f"{name}>=1"])
        bad = await error(client, "create_session", dependencies=["not a requirement"])
    assert f"No release matching '{dist}==9.9'" in missing
    assert "cannot be installed together" in conflict
    assert dist in conflict
    assert "is refused" in bad


async def test_a_python_the_host_lacks_is_refused_with_the_list(
    env_config: ServerConfig,
) -> None:
    async with Client(create_server(env_config)) as client:
        message = await error(client, "create_session", python="3.99")
        nonsense = await error(client, "create_session", python="/bin/sh")
    assert message.startswith("Python 3.99 is not installed on this server; it has ")
    assert "is not a Python version" in nonsense


async def test_building_an_environment_reports_progress(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(create_server(env_config)) as client:
        await client.call_tool(
            "create_session", {"dependencies": [name]}, progress_handler=progress
        )
    assert any(name in m and m.startswith("Building an environment layer") for m in messages)
    assert messages[-1] == "Starting the session's kernel"


async def test_deleting_a_session_keeps_a_layer_another_session_uses(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    config = replace(env_config, env_keep_s=0)
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[name])
        await call(client, "create_session", session_id="b", dependencies=[name])
        venv_a = eval((await run(client, "a", PATHS))["stdout"])[0]
        await call(client, "delete_session", session_id="a")
        await call(client, "restart_kernel", session_id="b")
        still = await run(client, "b", f"import {name}\n{name}.VERSION")
    assert not Path(venv_a).exists()
    assert still["result"] == "'1.0'"


async def test_the_environment_and_its_lock_are_described_and_exported(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    dist = name.replace("_", "-")
    async with Client(create_server(env_config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[name])
        await run(client, "a", "x = 1")
        plain = await call(client, "get_environment_info", session_id="a")
        locked = await call(client, "get_environment_info", session_id="a", include_lock=True)
        base = await call(client, "get_environment_info", session_id="default")
        await call(client, "export_notebook", session_id="a", path="a.ipynb")
        health = await call(client, "get_kernel_health")
    notebook = json.loads((env_config.workspace_root / "a.ipynb").read_text())
    mine = plain["session"]
    assert (mine["environment"], mine["requirements"], mine["lock"]) == ("own", [name], None)
    assert [x["kind"] for x in mine["layers"]] == ["packages", "runtime"]
    assert plain["pythons"][0] == mine["python_version"]
    lock = locked["session"]["lock"]
    assert f"{dist}==1.0" in lock
    assert any(line.startswith("ipykernel==") for line in lock)
    assert base["session"]["environment"] == "base"
    recorded = notebook["metadata"]["python_mcp_server"]["environment"]
    assert (recorded["environment"], recorded["requirements"]) == ("own", [name])
    assert f"{dist}==1.0" in recorded["lock"]
    assert health["environments"]["layers"] >= 2
    assert health["environments"]["session_environments"] == 1
    assert health["environments"]["disk_bytes"] > 0


def pep723(body: str, code: str) -> str:
    return (
        "# /// script\n" + "".join(f"# {line}\n" for line in body.splitlines()) + "# ///\n" + code
    )


async def test_a_script_runs_in_the_environment_its_metadata_declares(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    code = pep723(
        f'requires-python = ">=3.9"\ndependencies = ["{name}"]',
        f"import sys, {name}\nprint({name}.VERSION, sys.prefix)\n",
    )
    async with Client(create_server(env_config)) as client:
        await call(client, "save_script", name="needs.py", code=code)
        res = await call(client, "run_script", name="needs.py")
        await call(client, "save_script", name="plain.py", code=f"import {name}\n")
        plain = await call(client, "run_script", name="plain.py")
        base = await run(client, "default", f"import {name}")
        leftover = venvs(env_config.env_root)
    version, prefix = res["stdout"].split()
    assert (res["exit_code"], version) == (0, "1.0")
    assert "inline metadata (PEP 723)" in res["message"]
    assert not Path(prefix).exists()  # the ephemeral venv is gone
    assert prefix.split("/")[-1] not in leftover
    assert plain["exit_code"] == 1
    assert "ModuleNotFoundError" in plain["stderr"]
    assert base["error"]["ename"] == "ModuleNotFoundError"


async def test_script_metadata_that_cannot_be_honoured_says_why(
    env_config: ServerConfig,
) -> None:
    too_new = pep723('requires-python = ">=3.99"', "print(1)\n")
    broken = pep723("dependencies = [", "print(1)\n")
    async with Client(create_server(env_config)) as client:
        await call(client, "save_script", name="new.py", code=too_new)
        await call(client, "save_script", name="broken.py", code=broken)
        new_message = await error(client, "run_script", name="new.py")
        broken_message = await error(client, "run_script", name="broken.py")
    assert new_message.startswith("The script requires Python >=3.99, and this server has ")
    assert "is not valid TOML" in broken_message


@pytest.fixture
def fresh_env_dir(tmp_path: Path, env_dir: Path) -> Path:
    """An environment folder of its own, holding hard-linked copies of the module's layers (so
    the kernel runtime layer need not be built again)."""
    folder = tmp_path / "envs"
    if (env_dir / "layers").is_dir():
        shutil.copytree(env_dir / "layers", folder / "layers", copy_function=os.link)
    folder.mkdir(exist_ok=True)
    return folder


async def test_a_layer_no_session_uses_goes_after_the_keep_time(
    env_config: ServerConfig, fresh_env_dir: Path, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    config = replace(env_config, env_dir=fresh_env_dir, env_keep_s=0)
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[name])
        mine = eval((await run(client, "a", PATHS))["stdout"])
        made = json.loads((Path(mine[2]).parent / "manifest.json").read_text())["created"]
        await call(client, "delete_session", session_id="a")
        venv_gone = not Path(mine[0]).exists()
        with anyio.fail_after(20):
            while Path(mine[1]).exists():  # the package layer, collected with keep 0
                await anyio.sleep(0.1)
        await call(client, "create_session", session_id="b", dependencies=[])
        runtime = eval((await run(client, "b", PATHS))["stdout"])[1]
        again = json.loads((Path(runtime).parent / "manifest.json").read_text())["created"]
    assert venv_gone
    assert (runtime, again) == (mine[2], made)  # the kernel runtime layer stayed, not rebuilt
    assert layers(fresh_env_dir) == [Path(runtime).parent.name]


async def test_a_restart_sweeps_what_no_session_can_use(
    env_config: ServerConfig, runtime_key: str, fresh_env_dir: Path
) -> None:
    dead = fresh_env_dir / "venvs" / "4194305-deadbeef"  # above any pid
    (dead / "lib").mkdir(parents=True)
    old = fresh_env_dir / "layers" / ("0" * 20)
    (old / "site").mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    os.utime(old / "manifest.json", (1, 1))
    cut_short = fresh_env_dir / "layers" / ("1" * 20)
    (cut_short / "site").mkdir(parents=True)
    stale = fresh_env_dir / "layers" / ("2" * 20)  # a runtime layer of other pins
    (stale / "site").mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps({"kind": "runtime", "key": stale.name}))
    os.utime(stale / "manifest.json", (1, 1))
    current = fresh_env_dir / "layers" / runtime_key / "manifest.json"
    text = current.read_text()
    current.unlink()  # a copy of its own (the fixture's copy is hard-linked), then made old
    current.write_text(text)
    os.utime(current, (1, 1))
    kept = set(layers(fresh_env_dir)) - {old.name, cut_short.name, stale.name}
    config = replace(env_config, env_dir=fresh_env_dir, env_keep_s=60)
    async with Client(create_server(config)) as client:
        await call(client, "ping")
    assert venvs(fresh_env_dir) == []
    assert runtime_key in kept
    assert set(layers(fresh_env_dir)) == kept  # recent layers and the kernels' runtime stay


async def test_past_the_disk_bound_a_new_environment_is_refused(
    env_config: ServerConfig, fresh_env_dir: Path, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0")
    config = replace(env_config, env_dir=fresh_env_dir, env_max_mb=1)
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[])
        message = await error(client, "create_session", session_id="b", dependencies=[name])
        sessions = await call(client, "list_sessions")
    assert "--env-max-mb" in message
    assert "Delete sessions you no longer need" in message
    assert [s["session_id"] for s in sessions["sessions"]] == ["a"]


async def test_a_requirement_the_kernel_runtime_cannot_run_with_is_refused(
    env_config: ServerConfig, wheels: Path, name: str
) -> None:
    build_wheel(wheels, name, "1.0", requires=("traitlets<5",))
    running = version("traitlets")
    async with Client(create_server(env_config)) as client:
        before = venvs(env_config.env_root)
        direct = await error(client, "create_session", session_id="x", dependencies=["traitlets<5"])
        indirect = await error(client, "create_session", session_id="y", dependencies=[name])
        sessions = await call(client, "list_sessions")
        after = venvs(env_config.env_root)
        await call(client, "create_session", session_id="z", dependencies=["traitlets>=5"])
        accepted = await run(client, "z", "import traitlets\ntraitlets.__version__")
    for message in (direct, indirect):
        assert message.startswith("The kernel runtime needs traitlets>="), message
        assert f"the kernels run traitlets {running})" in message
        assert message.endswith(
            "Drop or loosen the requirement on traitlets, or pick a release of the package "
            f"needing it that accepts traitlets {running}."
        )
    assert "you require traitlets<5" in direct
    assert f"{name.replace('_', '-')} depend on traitlets<5" in indirect
    assert [s["session_id"] for s in sessions["sessions"]] == []
    assert after == before
    assert accepted["result"] == repr(running)


@pytest.mark.timeout(300)
async def test_the_kernel_runtime_layer_is_built_at_start_without_a_session_asking(
    env_config: ServerConfig, wheels: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "envs"
    config = replace(env_config, env_dir=folder, env_prebuild=True)
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    niceness: set[int] = set()
    async with Client(create_server(config)) as client:
        with anyio.fail_after(240):
            while not runtime_layers(folder):
                niceness |= {os.getpriority(os.PRIO_PROCESS, p) for p in builds_running()}
                await anyio.sleep(0.05)
        sessions = await call(client, "list_sessions")
        await client.call_tool(
            "create_session", {"session_id": "a", "dependencies": []}, progress_handler=progress
        )
        info = await call(client, "get_environment_info", session_id="a")
    assert sessions["sessions"] == []
    assert niceness == {19}  # built at the lowest CPU priority
    assert [x["key"] for x in info["session"]["layers"]] == runtime_layers(folder)
    assert not [m for m in messages if "kernel runtime" in m]  # nothing left to build or wait for


@pytest.mark.timeout(300)
async def test_a_session_asking_during_the_prebuild_shares_its_build(
    env_config: ServerConfig, wheels: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.services.environments")
    folder = tmp_path / "envs"
    config = replace(env_config, env_dir=folder, env_prebuild=True)
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    def logged(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if text in r.getMessage()]

    async with Client(create_server(config)) as client:
        await client.call_tool(
            "create_session", {"session_id": "a", "dependencies": []}, progress_handler=progress
        )
        with anyio.fail_after(240):
            while not logged("kernel runtime layer") or not logged(" ready ("):
                await anyio.sleep(0.05)
        res = await run(client, "a", "import ipykernel")
    assert res["status"] == "ok"
    assert len(logged("(the kernel runtime) built in")) == 1  # by the prebuild or the session
    assert len(runtime_layers(folder)) == 1
    assert [m for m in messages if "the kernel runtime" in m]  # it waited for, or made, it


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV_OFFLINE", raising=False)
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)


@pytest.mark.network
@pytest.mark.usefixtures("online")
async def test_a_package_the_index_lacks_is_named(env_config: ServerConfig) -> None:
    missing = f"pms-no-such-package-{uuid.uuid4().hex[:8]}"
    async with Client(create_server(env_config)) as client:
        message = await error(client, "create_session", dependencies=[missing])
    assert message.startswith(f"No package named {missing!r} was found in the package index.")


@pytest.mark.network
@pytest.mark.usefixtures("online")
@pytest.mark.timeout(300)
async def test_a_session_on_another_python_with_a_registry_package(
    env_config: ServerConfig,
) -> None:
    async with Client(create_server(env_config)) as client:
        info = await call(client, "get_environment_info")
        other = next((v for v in info["pythons"][1:] if v.startswith("3.12")), None)
        if other is None:
            pytest.skip("this host has no Python 3.12")
        await call(client, "create_session", session_id="p", dependencies=["six"], python="3.12")
        res = await run(client, "p", "import sys, six\nsys.version_info[:2], six.__name__")
    assert res["result"] == "((3, 12), 'six')"


async def test_an_install_reports_progress(env_config: ServerConfig, name: str) -> None:
    wheel = build_wheel(env_config.workspace_root, name, "1.0")
    messages: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(create_server(env_config)) as client:
        await call(client, "create_session", session_id="a", dependencies=[])
        await client.call_tool(
            "install_dependencies",
            {"session_id": "a", "packages": [wheel.name]},
            progress_handler=progress,
        )
    assert messages == [
        f"Installing {wheel.name} into its own environment of session 'a'",
        "The installer finished (exit code 0)",
    ]


async def test_an_unreachable_index_says_so(
    env_config: ServerConfig, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UV_OFFLINE", raising=False)
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    async with Client(create_server(env_config)) as client:
        message = await error(client, "create_session", session_id="x", dependencies=[name])
        sessions = await call(client, "list_sessions")
    assert message.startswith(
        f"The package index could not be reached for {name} and the kernel runtime, so nothing "
        "was installed"
    )
    assert sessions["sessions"] == []
