"""execute_python: one-shot runs in a fresh kernel, discarded afterwards, through the FastMCP
in-memory client against real kernels (the REST side is in test_rest.py)."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.conftest import kernels_mode
from tests.helpers import call, error, kernel_interpreters
from tests.test_packages import build_wheel

pytestmark = pytest.mark.anyio


async def until(check: Any, timeout_s: float = 30.0) -> None:
    with anyio.fail_after(timeout_s):
        while not await check():
            await anyio.sleep(0.05)


async def test_a_one_shot_run_has_the_result_shape_of_run_python_code_and_no_state(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        once = await call(client, "execute_python", code="x = 6 * 7\nprint('hi')\nx")
        again = await call(client, "execute_python", code="x")
        session = await call(client, "run_python_code", code="print('hi')\n42")
        sessions = await call(client, "list_sessions")
        health = await call(client, "get_kernel_health")

        async def only_the_session_kernel() -> bool:
            return len(kernel_interpreters()) == 1

        await until(only_the_session_kernel)
    assert set(once) == set(session)
    assert (once["status"], once["stdout"], once["result"]) == ("ok", "hi\n", "42")
    assert once["execution_count"] == 1
    assert once["session_id"].startswith("oneshot-")
    assert again["error"]["ename"] == "NameError"
    assert [s["session_id"] for s in sessions["sessions"]] == ["default"]
    assert [k["session_id"] for k in health["kernels"]] == ["default"]


async def test_a_one_shot_run_takes_the_pooled_kernel(config: ServerConfig) -> None:
    config = replace(config, kernel_pool_size=1)
    async with Client(create_server(config)) as client:

        async def pool_ready() -> bool:
            return bool((await call(client, "get_kernel_health"))["pool"]["ready"] == 1)

        await until(pool_ready, 60)
        pooled = set(kernel_interpreters())
        code = "import os\nos.getppid() > 0"
        run = await call(client, "execute_python", code=code)
        await until(pool_ready, 60)  # refilled in the background
        after = set(kernel_interpreters())
    assert run["status"] == "ok"
    assert len(pooled) == 1
    assert not pooled & after  # the pooled kernel ran the code and is gone


async def test_output_files_are_kept_for_a_while_then_deleted(config: ServerConfig) -> None:
    config = replace(config, max_output_chars=1000, oneshot_outputs_keep_s=1.0)
    async with Client(create_server(config)) as client:
        run = await call(client, "execute_python", code="print('z' * 5000)")
        [uri] = run["output_files"]
        kept = await client.read_resource(uri)
        folder = config.workspace_root / "outputs" / run["session_id"]
        assert folder.is_dir()

        async def removed() -> bool:
            return not folder.exists()

        await until(removed)
        with pytest.raises(Exception, match="one-shot run") as gone:
            await client.read_resource(uri)
    assert kept[0].text.startswith("z" * 100)
    assert "execute_python" in str(gone.value)


async def test_a_one_shot_run_counts_toward_the_session_limit(config: ServerConfig) -> None:
    config = replace(config, max_sessions=1)
    async with Client(create_server(config)) as client:
        await call(client, "create_session", session_id="only")
        refused = await error(client, "execute_python", code="1")
        await call(client, "delete_session", session_id="only")
        ran = await call(client, "execute_python", code="1")
    assert "limit of 1" in refused
    assert ran["result"] == "1"


async def test_the_arguments_are_checked(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        empty = await error(client, "execute_python", code="  ")
        timeout = await error(client, "execute_python", code="1", timeout_s=0)
        package = await error(client, "execute_python", code="1", dependencies=["not a name!"])
    assert "The code is empty" in empty
    assert "timeout_s" in timeout
    # on a gateway, dependencies are refused whatever they name (tests/test_gateway.py)
    assert ("not a name!" if kernels_mode() == "local" else "create_session") in package
    assert not kernel_interpreters()  # none was started for them


@pytest.mark.local_kernels  # on a gateway, refused (tests/test_gateway.py)
async def test_dependencies_give_the_run_its_own_environment_removed_afterwards(
    config: ServerConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("UV_FIND_LINKS", str(wheels))
    monkeypatch.setenv("UV_OFFLINE", "1")
    env_dir = tmp_path / "envs"
    config = replace(config, env_dir=env_dir, allow_local_package_paths=True)
    name = f"pmsone_{uuid.uuid4().hex[:10]}"
    build_wheel(wheels, name, "1.0")
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(create_server(config), progress_handler=on_progress) as client:
        run = await call(
            client, "execute_python", code=f"import {name}\n{name}.VERSION", dependencies=[name]
        )
        base = await call(client, "execute_python", code=f"import {name}")

        async def venv_removed() -> bool:
            venvs = env_dir / "venvs"
            return not venvs.is_dir() or not os.listdir(venvs)

        await until(venv_removed)
    assert (run["status"], run["result"]) == ("ok", "'1.0'")
    assert base["error"]["ename"] == "ModuleNotFoundError"
    assert progress  # the environment build was reported
