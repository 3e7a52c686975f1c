"""run_python_code through the in-memory FastMCP client against real kernels."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.conftest import kernels_mode
from tests.helpers import (
    IGNORES_INTERRUPTS,
    SLEEP_UNTIL_INTERRUPTED,
    cancel_when,
    kernel_pid,
    start_cell,
    wait_for_file,
)
from tests.test_plain_json import call_request, serving

pytestmark = pytest.mark.anyio


async def test_code_output_and_last_expression_come_back_typed(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": "print('hi'); 6 * 7"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["stdout"], data["result"], data["execution_count"]) == (
        "ok",
        "hi\n",
        "42",
        1,
    )
    assert "hi" in res.content[0].text


async def test_an_exception_in_user_code_is_data_not_a_tool_error(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": "1/0"})
    assert not res.is_error
    data = res.structured_content
    assert data is not None
    assert data["status"] == "error"
    assert data["error"]["ename"] == "ZeroDivisionError"
    assert not any("\x1b[" in line for line in data["error"]["traceback"])


async def session_state(client: Client[Any], session_id: str) -> str:
    listed = await client.call_tool("list_sessions", {})
    assert listed.structured_content is not None
    rows = {s["session_id"]: s for s in listed.structured_content["sessions"]}
    return str(rows[session_id]["state"])


async def test_input_raises_a_clear_error_instead_of_hanging(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": "input('name? ')"})
    data = res.structured_content
    assert data is not None
    assert data["status"] == "error"
    assert data["error"]["ename"] == "StdinNotImplementedError"
    assert "does not support input requests" in data["error"]["evalue"]


async def test_a_timeout_interrupts_the_cell_and_keeps_the_variables(config: ServerConfig) -> None:
    code = "import time\nwith open('ran.txt', 'a') as f: f.write('x')\ntime.sleep(60)"
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "kept = 'yes'"})
        res = await client.call_tool("run_python_code", {"code": code, "timeout_s": 1})
        after = await client.call_tool("run_python_code", {"code": "kept"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("timeout", True)
    assert data["message"] == "The code ran longer than 1 s; interrupted, state kept."
    assert data["error"]["ename"] == "KeyboardInterrupt"
    # the traceback ends at the user's line, as with Python's own handler: no server frame
    assert "time.sleep(60)" in data["error"]["traceback"][-2]
    assert "kernel_ext" not in "".join(data["error"]["traceback"])
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'yes'"
    assert (config.workspace_root / "ran.txt").read_text() == "x"  # sent once, never re-sent


@pytest.mark.parametrize(
    ("code", "line"),
    [
        # awaiting: the event loop runs, not the cell; the interrupt cancels it where it waits
        ("import asyncio\nawait asyncio.sleep(0)\nawait asyncio.sleep(60)", "asyncio.sleep(60)"),
        # an async cell busy in synchronous code: raised where it runs
        ("import asyncio, time\nawait asyncio.sleep(0)\ntime.sleep(60)", "time.sleep(60)"),
    ],
)
async def test_a_timeout_interrupts_an_async_cell_and_keeps_the_variables(
    config: ServerConfig, code: str, line: str
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "kept = 'yes'"})
        res = await client.call_tool("run_python_code", {"code": code, "timeout_s": 1})
        after = await client.call_tool("run_python_code", {"code": "kept"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("timeout", True), data
    assert data["message"] == "The code ran longer than 1 s; interrupted, state kept."
    assert data["error"]["ename"] == "KeyboardInterrupt"
    assert line in "".join(data["error"]["traceback"])
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'yes'"


async def test_a_cell_that_ignores_interrupts_gets_the_kernel_restarted(
    config: ServerConfig,
) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "lost = 1"})
        res = await client.call_tool("run_python_code", {"code": code, "timeout_s": 1})
        after = await client.call_tool("run_python_code", {"code": "'lost' in globals()"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("timeout", False)
    assert data["message"] == (
        "The code ran longer than 1 s; it did not stop when interrupted, so the kernel was "
        "restarted: restarted, state lost (all variables are gone)."
    )
    assert after.structured_content is not None
    assert after.structured_content["result"] == "False"


async def test_a_kernel_that_exits_mid_cell_is_reported_and_restarted(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "run_python_code",
            # the pause lets the kernel's I/O thread send the line; os._exit drops unsent messages
            {"code": "import os, time\nprint('before', flush=True)\ntime.sleep(0.5)\nos._exit(3)"},
        )
        after = await client.call_tool("run_python_code", {"code": "1 + 1"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("error", False)
    # a gateway tells that its kernel died, not how
    how = "exited with code 3" if kernels_mode() == "local" else "died (the gateway at "
    assert data["message"].startswith(f"The kernel {how}")
    assert "while running this cell. It was restarted; all variables were lost." in data["message"]
    assert data["stdout"] == "before\n"
    assert data["error"]["ename"] == "KernelDied"
    assert data["error"]["evalue"].startswith(f"The kernel {how}")
    assert data["error"]["traceback"] == []
    assert after.structured_content is not None
    assert after.structured_content["result"] == "2"


@pytest.mark.local_kernels
async def test_a_kernel_killed_from_outside_mid_cell_is_reported(config: ServerConfig) -> None:
    code = "import time\nopen('started', 'w').close()\ntime.sleep(60)"
    async with Client(create_server(config)) as client, anyio.create_task_group() as tg:
        results = start_cell(tg, client, {"code": code})
        await wait_for_file(config.workspace_root / "started")
        os.kill(await kernel_pid(client), signal.SIGKILL)
    data = results[0]
    assert data["status"] == "error"
    assert str(data["message"]).startswith(
        "The kernel was killed by SIGKILL (killed from outside, or out of memory) while running"
    )
    assert data["error"]["ename"] == "KernelDied"
    assert str(data["error"]["evalue"]).startswith("The kernel was killed by SIGKILL")


async def test_interrupt_kernel_stops_a_cell_started_by_another_call(config: ServerConfig) -> None:
    code = "import time\nopen('started', 'w').close()\ntime.sleep(60)"
    async with Client(create_server(config)) as client, anyio.create_task_group() as tg:
        results = start_cell(tg, client, {"code": code})
        await wait_for_file(config.workspace_root / "started")
        answer = await client.call_tool("interrupt_kernel", {})
    assert answer.structured_content is not None
    assert answer.structured_content["message"] == "Interrupt sent to the running code."
    error = results[0]["error"]
    assert isinstance(error, dict)
    assert error["ename"] == "KeyboardInterrupt"


async def test_a_cell_that_ignored_interrupt_kernel_still_times_out_and_is_restarted(
    config: ServerConfig,
) -> None:
    config = dataclasses.replace(config, interrupt_grace_s=0.5)
    args = {"code": IGNORES_INTERRUPTS, "timeout_s": 3}
    async with Client(create_server(config)) as client:
        async with anyio.create_task_group() as tg:
            results = start_cell(tg, client, args)
            await wait_for_file(config.workspace_root / "started")
            answer = await client.call_tool("interrupt_kernel", {})
        after = await client.call_tool("run_python_code", {"code": "'fresh'"})
    assert answer.structured_content is not None
    assert answer.structured_content["message"] == "Interrupt sent to the running code."
    assert (results[0]["status"], results[0]["state_kept"]) == ("timeout", False)
    assert "did not stop when interrupted, so the kernel was restarted" in results[0]["message"]
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'fresh'"


async def test_cancelling_the_call_interrupts_the_kernel(config: ServerConfig) -> None:
    code = SLEEP_UNTIL_INTERRUPTED
    async with Client(create_server(config)) as client:
        await cancel_when(client, {"code": code}, config.workspace_root / "started")
        await wait_for_file(config.workspace_root / "interrupted")
        after = await client.call_tool("run_python_code", {"code": "'still here'"})
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'still here'"


async def test_a_cancelled_cell_still_running_shows_busy_until_it_ends(
    config: ServerConfig,
) -> None:
    code = (
        "import os, time\n"
        "open('started', 'w').close()\n"
        "while not os.path.exists('release'):\n"
        "    try:\n"
        "        time.sleep(0.01)\n"
        "    except KeyboardInterrupt:\n"
        "        open('ignored', 'w').close()"
    )
    async with Client(create_server(config)) as client:
        await cancel_when(client, {"code": code}, config.workspace_root / "started")
        await wait_for_file(config.workspace_root / "ignored")
        during = await client.call_tool("list_sessions", {})
        (config.workspace_root / "release").touch()
        after = await client.call_tool("run_python_code", {"code": "'free'"})
        listed = await client.call_tool("list_sessions", {})
    assert during.structured_content is not None
    assert [s["state"] for s in during.structured_content["sessions"]] == ["busy"]
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'free'"
    assert listed.structured_content is not None
    assert [s["state"] for s in listed.structured_content["sessions"]] == ["idle"]


async def test_ping_tools_list_and_other_sessions_answer_while_a_cell_runs(
    config: ServerConfig,
) -> None:
    code = "import time\nopen('started', 'w').close()\nwhile not __import__('os').path.exists('release'):\n    time.sleep(0.01)"
    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "other"})
        async with anyio.create_task_group() as tg:
            long_call_done = anyio.Event()

            async def run() -> None:
                await client.call_tool("run_python_code", {"code": code})
                long_call_done.set()

            tg.start_soon(run)
            await wait_for_file(config.workspace_root / "started")
            pong = await client.call_tool("ping", {})
            tools = await client.list_tools()
            other = await client.call_tool(
                "run_python_code", {"code": "'parallel'", "session_id": "other"}
            )
            assert not long_call_done.is_set()
            (config.workspace_root / "release").touch()
    assert pong.structured_content is not None
    assert pong.structured_content["ok"] is True
    assert "run_python_code" in {t.name for t in tools}
    assert other.structured_content is not None
    assert other.structured_content["result"] == "'parallel'"


async def test_calls_on_one_session_run_one_at_a_time_in_arrival_order(
    config: ServerConfig,
) -> None:
    hold = "import os, time\nopen('started', 'w').close()\nwhile not os.path.exists('release'):\n    time.sleep(0.01)\norder = []"
    async with Client(create_server(config)) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "run_python_code", {"code": hold})
            await wait_for_file(config.workspace_root / "started")
            for i in range(5):
                tg.start_soon(client.call_tool, "run_python_code", {"code": f"order.append({i})"})
                await anyio.lowlevel.checkpoint()
            (config.workspace_root / "release").touch()
        res = await client.call_tool("run_python_code", {"code": "order"})
    assert res.structured_content is not None
    assert res.structured_content["result"] == "[0, 1, 2, 3, 4]"


async def test_two_sessions_really_run_at_the_same_time(config: ServerConfig) -> None:
    def meet(mine: str, theirs: str) -> str:
        return (
            f"import os, time\nopen('{mine}', 'w').close()\n"
            f"while not os.path.exists('{theirs}'):\n    time.sleep(0.01)\n'{mine} met {theirs}'"
        )

    async with Client(create_server(config)) as client:
        await client.call_tool("create_session", {"session_id": "a"})
        await client.call_tool("create_session", {"session_id": "b"})
        results: dict[str, object] = {}

        async def run(sid: str, code: str) -> None:
            res = await client.call_tool(
                "run_python_code", {"code": code, "session_id": sid, "timeout_s": 30}
            )
            assert res.structured_content is not None
            results[sid] = res.structured_content["result"]

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a", meet("a-here", "b-here"))
            tg.start_soon(run, "b", meet("b-here", "a-here"))
    assert results == {"a": "'a-here met b-here'", "b": "'b-here met a-here'"}


@pytest.mark.parametrize("code", ["exit()", "quit()"])
async def test_exit_in_a_cell_restarts_the_kernel_and_says_so(
    config: ServerConfig, code: str
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "v = 7"})
        res = await client.call_tool("run_python_code", {"code": code})
        after = await client.call_tool("run_python_code", {"code": "'v' in globals()"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("ok", False)
    assert data["message"] == (
        "The code asked the kernel to exit (exit() or quit()), so it was restarted: all "
        "variables were lost. Use restart_kernel to do this on purpose."
    )
    assert after.structured_content is not None
    assert (after.structured_content["result"], after.structured_content["message"]) == (
        "False",
        None,
    )


@pytest.mark.local_kernels
async def test_a_kernel_that_died_between_calls_is_replaced_before_the_next_cell(
    config: ServerConfig,
) -> None:
    slow_supervisor = dataclasses.replace(config, health_check_interval_s=3600)
    async with Client(create_server(slow_supervisor)) as client:
        await client.call_tool("run_python_code", {"code": "1"})
        os.kill(await kernel_pid(client), signal.SIGKILL)
        with anyio.fail_after(10):
            while await session_state(client, "default") != "dead":
                await anyio.sleep(0.02)
        res = await client.call_tool("run_python_code", {"code": "21 * 2"})
        health = await client.call_tool("get_kernel_health", {})
        again = await client.call_tool("run_python_code", {"code": "1"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["result"], data["state_kept"]) == ("ok", "42", False)
    assert data["message"] == (
        "The kernel was killed by SIGKILL (killed from outside, or out of memory) after the "
        "previous call; it was restarted before running this code, and all variables were lost."
    )
    assert health.structured_content is not None
    reason = health.structured_content["kernels"][0]["last_restart_reason"]
    assert "was killed by SIGKILL" in reason
    assert "after a call" in reason
    assert again.structured_content is not None
    assert again.structured_content["message"] is None  # told once, in the call that saw it


async def test_a_cancel_during_the_after_cell_steps_leaves_the_session_usable(
    config: ServerConfig,
) -> None:
    slow_drain = (
        "import sys, time\n"
        "_hook = sys.modules['__pmcp__']\n"
        "_fast = _hook.drain\n"
        "def _slow():\n"
        "    open('draining', 'w').close()\n"
        "    time.sleep(3)\n"
        "    return _fast()\n"
        "_hook.drain = _slow\n"
        # without the reply-metadata report the server asks for the list in a separate request
        "del get_ipython().kernel.finish_metadata"
    )
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": slow_drain})
        (config.workspace_root / "draining").unlink(missing_ok=True)
        await cancel_when(client, {"code": "1/0"}, config.workspace_root / "draining")
        with anyio.fail_after(30):
            after = await client.call_tool("run_python_code", {"code": "'usable'"})
    assert after.structured_content is not None
    assert after.structured_content["result"] == "'usable'"


async def test_output_a_thread_prints_after_its_cell_returned_reaches_the_next_call(
    config: ServerConfig,
) -> None:
    code = (
        "import os, threading, time\n"
        "def later():\n"
        "    while not os.path.exists('go'):\n"
        "        time.sleep(0.01)\n"
        "    print('late line', flush=True)\n"
        "    time.sleep(0.2)\n"
        "    open('printed', 'w').close()\n"
        "threading.Thread(target=later, daemon=True).start()"
    )
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": code})
        (config.workspace_root / "go").touch()
        await wait_for_file(config.workspace_root / "printed")
        res = await client.call_tool("run_python_code", {"code": "1"})
    data = res.structured_content
    assert data is not None
    assert data["message"] == (
        "Output printed after an earlier call had returned (by a thread or a background "
        "process), kept so it is not lost:\nlate line\n"
    )


async def test_a_cell_that_finished_as_its_tiny_time_limit_ran_out_is_ok_not_timeout(
    config: ServerConfig,
) -> None:
    # the limit runs out at once; the interrupt then meets the cell running (a timeout with
    # KeyboardInterrupt), or finished (ok, with its result): never both, never a lost reply
    # or a restarted kernel
    seen = []
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "n = 0"})
        local = kernels_mode() == "local"  # a gateway's kernel has no pid here
        pid = await kernel_pid(client) if local else None
        for limit in (1e-9, 1e-4, 1e-3, 2e-3, 5e-3) * 4:
            res = await client.call_tool(
                "run_python_code", {"code": "n += 1\nn", "timeout_s": limit}
            )
            data = res.structured_content
            assert data is not None
            seen.append(data["status"])
            assert data["state_kept"] is True, data
            if data["status"] == "ok":
                assert (data["message"], data["error"]) == (None, None), data
                assert data["result"] is not None, data
            else:
                assert data["status"] == "timeout", data
                assert data["error"]["ename"] == "KeyboardInterrupt", data
                assert data["message"] == (
                    f"The code ran longer than {limit:g} s; interrupted, state kept."
                )
        assert (await kernel_pid(client) if local else None) == pid
    assert "ok" in seen


async def test_a_time_limit_that_is_not_a_positive_finite_number_is_refused_naming_the_range(
    config: ServerConfig,
) -> None:
    async with serving(config) as url, httpx.AsyncClient(timeout=60) as http:
        for literal in ("NaN", "Infinity", "-Infinity", "1e999", "0", "-1", "86401"):
            request = call_request("1")
            body = json.dumps(request["json"]).replace(
                '"code": "1"', f'"code": "1", "timeout_s": {literal}'
            )
            headers = {**request["headers"], "Content-Type": "application/json"}
            response = await http.post(url, content=body, headers=headers)
            result = response.json()["result"]
            assert result["isError"] is True
            assert result["content"][0]["text"].startswith(
                "Invalid arguments for run_python_code: timeout_s: Input should be a finite "
                "number of seconds above 0 and at most 86400 (got "
            ), literal
