"""Sessions: create, list, switch (per caller), delete, limits."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.conftest import pid_alive
from tests.helpers import kernel_processes, start_cell, wait_for_file
from tests.servers import http_server

pytestmark = pytest.mark.anyio


def kernel_children() -> list[int]:
    """Live kernel processes started by this test process (with a sandbox, its launchers too)."""
    return kernel_processes()


async def test_create_session_without_a_name_returns_an_unguessable_id(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("create_session", {"description": "scratch"})
    data = res.structured_content
    assert data is not None
    assert re.fullmatch(r"s-[A-Za-z0-9_-]{16}", data["session_id"])
    assert (data["description"], data["state"], data["execution_count"]) == ("scratch", "idle", 0)


async def test_a_duplicate_session_id_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "work"})
        res = await client.call_tool("create_session", {"session_id": "work"}, raise_on_error=False)
    assert res.is_error
    assert res.content[0].text == (
        "A session named 'work' already exists. Use it as it is, pick another session_id, or "
        "call delete_session first."
    )


async def test_an_unusable_session_name_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "create_session", {"session_id": "../etc"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text.startswith("session_id '../etc' is not usable")


async def test_sessions_keep_separate_variables(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        await client.call_tool("run_python_code", {"code": "v = 'a'", "session_id": "a"})
        await client.call_tool("run_python_code", {"code": "v = 'default'"})
        res = await client.call_tool("run_python_code", {"code": "v", "session_id": "a"})
    assert res.structured_content is not None
    assert res.structured_content["result"] == "'a'"


@pytest.mark.local_kernels
async def test_list_sessions_shows_state_counts_and_pids(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "1"})
        await client.call_tool("create_session", {"session_id": "b", "description": "second"})
        res = await client.call_tool("list_sessions", {})
        data = res.structured_content
        assert data is not None
        rows = {s["session_id"]: s for s in data["sessions"]}
        assert all(pid_alive(s["kernel_pid"]) for s in rows.values())
    assert sorted(rows) == ["b", "default"]
    assert (rows["default"]["execution_count"], rows["b"]["description"]) == (1, "second")
    assert [s["state"] for s in rows.values()] == ["idle", "idle"]
    assert (data["max_sessions"], data["current_session"]) == (16, "default")


async def test_the_session_limit_tells_the_model_what_to_do(config: ServerConfig) -> None:
    async with Client(create_server(replace(config, max_sessions=2))) as client:
        await client.call_tool("create_session", {"session_id": "one"})
        await client.call_tool("create_session", {"session_id": "two"})
        res = await client.call_tool(
            "create_session", {"session_id": "three"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "The server already runs its limit of 2 sessions (one, two). Call delete_session on one "
        "you no longer need, or reuse an existing session_id."
    )


async def test_delete_session_ends_its_kernel_and_forgets_it(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        created = await client.call_tool("create_session", {"session_id": "gone"})
        assert created.structured_content is not None
        pid = created.structured_content["kernel_pid"]
        await client.call_tool("delete_session", {"session_id": "gone"})
        res = await client.call_tool(
            "run_python_code", {"code": "1", "session_id": "gone"}, raise_on_error=False
        )
    assert not pid_alive(pid)
    assert res.is_error
    assert res.content[0].text == (
        "Session 'gone' was deleted (delete_session) and its variables are gone. Pass another "
        "session_id (on a connection that keeps a current session, switch_session changes it), "
        "or call create_session to start a new one."
    )


async def test_restart_kernel_clears_variables(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "x = 1"})
        await client.call_tool("restart_kernel", {})
        res = await client.call_tool("run_python_code", {"code": "'x' in globals()"})
    assert res.structured_content is not None
    assert res.structured_content["result"] == "False"


async def test_switch_session_on_a_stateless_connection_says_to_pass_session_id(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "mine"})
        res = await client.call_tool("switch_session", {"session_id": "mine"})
    data = res.structured_content
    assert data is not None
    assert data["applied"] is False
    assert "Pass session_id='mine' to each call." in data["message"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_one_clients_switch_never_moves_another_clients_calls(workspace: Path) -> None:
    with http_server(workspace) as server:
        async with (
            Client(server.url, mode="legacy") as alice,
            Client(server.url, mode="legacy") as bob,
        ):
            await alice.call_tool("create_session", {"session_id": "alice"})
            switched = await alice.call_tool("switch_session", {"session_id": "alice"})
            mine = await alice.call_tool("run_python_code", {"code": "who = 'alice'"})
            theirs = await bob.call_tool("run_python_code", {"code": "who = 'bob'"})
            check = await alice.call_tool("run_python_code", {"code": "who"})
    assert switched.structured_content is not None
    assert switched.structured_content["applied"] is True
    assert mine.structured_content is not None
    assert theirs.structured_content is not None
    assert (mine.structured_content["session_id"], theirs.structured_content["session_id"]) == (
        "alice",
        "default",
    )
    assert check.structured_content is not None
    assert check.structured_content["result"] == "'alice'"


async def test_deleting_a_session_while_its_cell_runs_ends_the_call_and_leaks_no_kernel(
    config: ServerConfig,
) -> None:
    code = "import os, time\nopen('started', 'w').close()\ntime.sleep(60)"
    async with Client(create_server(config)) as client:
        created = await client.call_tool("create_session", {"session_id": "doomed"})
        assert created.structured_content is not None
        pid = created.structured_content["kernel_pid"]
        async with anyio.create_task_group() as tg:
            results = start_cell(tg, client, {"code": code, "session_id": "doomed"})
            await wait_for_file(config.workspace_root / "started")
            await client.call_tool("delete_session", {"session_id": "doomed"})
        listed = await client.call_tool("list_sessions", {})
    assert not pid_alive(pid)
    assert kernel_children() == []
    assert (results[0]["status"], results[0]["state_kept"]) == ("error", False)
    assert "delete_session" in str(results[0]["message"])
    assert listed.structured_content is not None
    assert [s["session_id"] for s in listed.structured_content["sessions"]] == []


async def test_the_limit_explains_why_a_call_without_session_id_could_not_start_default(
    config: ServerConfig,
) -> None:
    async with Client(create_server(replace(config, max_sessions=2))) as client:
        await client.call_tool("create_session", {"session_id": "c"})
        await client.call_tool("create_session", {"session_id": "d"})
        res = await client.call_tool("run_python_code", {"code": "1"}, raise_on_error=False)
    assert res.is_error
    assert res.content[0].text == (
        "No session_id was given, so this call needs the 'default' session, which is not "
        "running, and the server already runs its limit of 2 sessions (c, d). Pass "
        "session_id='c' (or another of those), or call delete_session on one you no longer need."
    )


async def test_an_overlong_description_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "create_session", {"description": "d" * 501}, raise_on_error=False
        )
    assert res.is_error
    assert "description" in res.content[0].text


async def test_a_call_queued_on_a_session_that_is_then_deleted_gets_a_clear_error(
    config: ServerConfig,
) -> None:
    hold = "import time\nopen('started', 'w').close()\ntime.sleep(60)"
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "q"})
        queued: list[tuple[bool, str]] = []

        async def second() -> None:
            res = await client.call_tool(
                "run_python_code", {"code": "1", "session_id": "q"}, raise_on_error=False
            )
            queued.append((res.is_error, res.content[0].text))

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "run_python_code", {"code": hold, "session_id": "q"})
            await wait_for_file(config.workspace_root / "started")
            tg.start_soon(second)
            await client.call_tool("delete_session", {"session_id": "q"})
    assert queued == [
        (
            True,
            (
                "Session 'q' was deleted (delete_session) and its variables are gone. Pass "
                "another session_id (on a connection that keeps a current session, "
                "switch_session changes it), or call create_session to start a new one."
            ),
        )
    ]
    assert kernel_children() == []


async def test_concurrent_restarts_and_a_delete_leave_no_kernel_behind(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "race"})
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(
                    partial(client.call_tool, raise_on_error=False),
                    "restart_kernel",
                    {"session_id": "race"},
                )
            tg.start_soon(client.call_tool, "delete_session", {"session_id": "race"})
        assert kernel_children() == []


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_switched_caller_whose_session_is_deleted_is_told_not_moved(
    workspace: Path,
) -> None:
    with http_server(workspace) as server:
        async with Client(server.url, mode="legacy") as alice, Client(server.url) as bob:
            await alice.call_tool("create_session", {"session_id": "mine"})
            await alice.call_tool("switch_session", {"session_id": "mine"})
            await bob.call_tool("delete_session", {"session_id": "mine"})
            res = await alice.call_tool("run_python_code", {"code": "1"}, raise_on_error=False)
            listed = await alice.call_tool("list_sessions", {})
            await alice.call_tool("create_session", {"session_id": "second"})
            await alice.call_tool("switch_session", {"session_id": "second"})
            deleted = await alice.call_tool("delete_session", {})
            after = await alice.call_tool("run_python_code", {"code": "1"})
    assert res.is_error
    assert res.content[0].text.startswith("Session 'mine' was deleted (delete_session)")
    assert listed.structured_content is not None
    assert listed.structured_content["current_session"] == "mine"
    assert deleted.structured_content is not None
    assert deleted.structured_content["message"] == (
        "Session 'second' was shut down. It was your current session: calls without session_id "
        "go to 'default' again."
    )
    assert after.structured_content is not None
    assert after.structured_content["session_id"] == "default"


DELETED_DEFAULT = re.compile(
    r"Session 'default' was deleted by another call at \d\d:\d\d:\d\d UTC \(delete_session\); "
    r"this is a new kernel, and earlier variables are gone\."
)


async def _run(client: Client[Any], code: str) -> dict[str, Any]:
    res = await client.call_tool("run_python_code", {"code": code})
    assert res.structured_content is not None
    return res.structured_content


async def test_the_first_call_after_default_was_deleted_is_told_its_variables_are_gone(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await _run(client, "x = 1")
        await client.call_tool("delete_session", {"session_id": "default"})
        first = await _run(client, "'x' in globals()")
        second = await _run(client, "y = 2")
    assert (first["result"], first["state_kept"]) == ("False", False)
    assert DELETED_DEFAULT.fullmatch(first["message"] or ""), first["message"]
    assert (second["message"], second["state_kept"]) == (None, True)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_every_client_that_used_default_is_told_once_it_was_deleted_but_not_the_deleter(
    workspace: Path,
) -> None:
    with http_server(workspace) as server:
        async with (
            Client(server.url, mode="legacy") as alice,
            Client(server.url, mode="legacy") as bob,
            Client(server.url) as carol,  # stateless: no identity
        ):
            await _run(alice, "x = 1")
            await _run(bob, "x")
            await bob.call_tool("delete_session", {})
            first = await _run(carol, "'x' in globals()")  # starts the new default
            alice_first = await _run(alice, "'x' in globals()")
            alice_again = await _run(alice, "1")
            deleter = await _run(bob, "1")
    for told in (first, alice_first):
        assert (told["result"], told["state_kept"]) == ("False", False)
        assert DELETED_DEFAULT.fullmatch(told["message"] or ""), told["message"]
    for quiet in (alice_again, deleter):
        assert (quiet["message"], quiet["state_kept"]) == (None, True)
