"""save_script and run_script through the in-memory client, with real subprocesses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import anyio
import pytest
from fastmcp import Client
from mcp.types import TextContent

from python_mcp_server.config import ServerConfig
from python_mcp_server.procs import find_cgroup_parent
from python_mcp_server.server import create_server
from tests.conftest import sandboxed
from tests.helpers import call, error, processes_naming

pytestmark = pytest.mark.anyio


async def wait_none_left(workspace: Path, reap_pids: list[int]) -> None:
    """Wait (bounded) until no process a script of this test started is alive: each names the
    test's own workspace in its argv (in a sandbox, the pids a script prints are its own
    namespace's). Any left are killed at teardown."""
    try:
        with anyio.fail_after(5):
            while processes_naming(str(workspace)):
                await anyio.sleep(0.05)
    finally:
        reap_pids.extend(processes_naming(str(workspace)))


REPORT = """\
import json, os, sys
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "python": sys.executable,
                  "stdin": sys.stdin.read()}))
print("to stderr", file=sys.stderr)
"""

# the grandchild names the workspace (its cwd) so the test can find it on the host
SLEEPER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(\n"
    "    [sys.executable, '-c', 'import time; time.sleep(1000)', os.getcwd()],\n"
    "    start_new_session=True,\n"
    ")\n"
    "print(child.pid, flush=True)\n"
)
GRANDCHILD = SLEEPER + "import time\ntime.sleep(1000)\n"


async def test_save_script_adds_py_and_writes_into_scripts(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        saved = await call(client, "save_script", name="clean_data", code="print(1)\n")
    assert saved == {
        "path": "scripts/clean_data.py",
        "bytes_written": 9,
        "created": True,
        "uri": "workspace://scripts/clean_data.py",
    }
    assert (workspace / "scripts" / "clean_data.py").read_text() == "print(1)\n"


async def test_save_script_replaces_a_script_of_the_same_name(
    config: ServerConfig, workspace: Path
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="s.py", code="print(1)\n")
        saved = await call(client, "save_script", name="s.py", code="print(2)\n")
    assert saved["created"] is False
    assert (workspace / "scripts" / "s.py").read_text() == "print(2)\n"


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("sub/x.py", "it names a folder; scripts live directly in scripts/"),
        ("../x.py", "it names a folder; scripts live directly in scripts/"),
        ("", "it is empty"),
        (".hidden.py", "use letters, digits, '_', '-' and '.', not starting with '.' or '-'"),
        ("a b.py", "use letters, digits, '_', '-' and '.', not starting with '.' or '-'"),
    ],
)
async def test_save_script_refuses_names_that_are_not_plain_file_names(
    config: ServerConfig, workspace: Path, name: str, rule: str
) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "save_script", name=name, code="x = 1")
    assert message == (
        f"Script name {name!r} is refused: {rule}. Use a plain file name such as 'analysis.py'."
    )


async def test_a_script_runs_with_the_kernel_python_in_the_workspace_with_argv_and_no_stdin(
    config: ServerConfig, workspace: Path
) -> None:
    args = ["plain", "with space", "; echo injected", "$HOME"]
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="report", code=REPORT)
        res = await call(client, "run_script", name="report", args=args)
    assert (res["exit_code"], res["timed_out"], res["message"]) == (0, False, None)
    assert json.loads(res["stdout"]) == {
        "cwd": str(workspace.resolve()),
        "argv": args,
        "python": config.kernel_python,
        "stdin": "",
    }
    assert res["stderr"] == "to stderr\n"
    assert res["duration_ms"] > 0


async def test_a_script_that_exits_non_zero_reports_its_code_and_stderr(
    config: ServerConfig,
) -> None:
    code = "import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)\n"
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="fail", code=code)
        res = await client.call_tool("run_script", {"name": "fail.py"})
    data = res.structured_content
    assert data is not None
    assert not res.is_error
    assert (data["exit_code"], data["stderr"], data["message"]) == (
        3,
        "bad input\n",
        "The script exited with code 3; see stderr.",
    )
    item = res.content[0]
    assert isinstance(item, TextContent)
    assert item.text.startswith("[exit code 3] scripts/fail.py, ")


async def test_a_silent_non_zero_exit_does_not_point_at_an_empty_stderr(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="quiet", code="raise SystemExit(4)\n")
        data = await call(client, "run_script", name="quiet.py")
    assert (data["exit_code"], data["stderr"], data["message"]) == (
        4,
        "",
        "The script exited with code 4 and wrote nothing to stderr.",
    )


async def test_a_missing_script_names_list_files_and_save_script(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        message = await error(client, "run_script", name="nope")
    assert message == (
        "No script 'nope.py' in scripts/. Call list_files(path='scripts') to see the saved "
        "scripts, or save_script to create it."
    )


async def test_a_timeout_kills_the_script_and_a_grandchild_in_its_own_session(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="spawner", code=GRANDCHILD)
        res = await call(client, "run_script", name="spawner", timeout_s=1)
    await wait_none_left(config.workspace_root, reap_pids)
    assert (res["timed_out"], res["exit_code"]) == (True, -9)
    assert res["killed_processes"] == 2
    assert res["message"] == (
        "The script ran past 1 s and was killed, with every process it started (2 in all). "
        "Output up to that point is shown."
    )


async def test_a_background_process_holding_the_output_is_killed_after_the_script_exits(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="daemon", code=SLEEPER)
        res = await call(client, "run_script", name="daemon")
    await wait_none_left(config.workspace_root, reap_pids)
    assert (res["timed_out"], res["exit_code"]) == (False, 0)
    if not sandboxed():
        assert res["killed_processes"] == 1
        assert res["message"] == (
            "The script left 1 background process(es) holding its output open; they were killed."
        )
        return
    # in the sandbox the script's supervisor ends it (and counts it) as soon as the script exits
    assert res["killed_processes"] == 1
    assert res["message"] == (
        "1 background process(es) the script left running were ended; run long-lived services "
        "from run_python_code instead."
    )


async def test_long_output_keeps_head_and_tail_with_a_marker(config: ServerConfig) -> None:
    small = dataclasses.replace(config, max_output_chars=20)
    code = "print('A' * 10 + 'x' * 1000 + 'B' * 9)\n"
    async with Client(create_server(small)) as client:
        await call(client, "save_script", name="loud", code=code)
        res = await call(client, "run_script", name="loud")
    assert res["stdout"] == "AAAAAAAAAA\n... [1000 bytes omitted] ...\nBBBBBBBBB\n"
    assert res["stdout_truncated"] is True
    assert res["message"] == (
        "Long output was cut to 20 bytes per stream (head and tail kept); write large results "
        "to a file in outputs/ instead."
    )


async def test_a_timeout_above_the_server_limit_is_lowered_to_it(
    config: ServerConfig, reap_pids: list[int]
) -> None:
    limited = dataclasses.replace(config, script_timeout_s=1)
    async with Client(create_server(limited)) as client:
        await call(client, "save_script", name="spawner", code=GRANDCHILD)
        res = await call(client, "run_script", name="spawner", timeout_s=3600)
    await wait_none_left(limited.workspace_root, reap_pids)
    assert res["timed_out"] is True
    assert res["message"].startswith("The script ran past 1 s and was killed")


async def test_a_nul_byte_in_an_argument_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await call(client, "save_script", name="s", code="pass\n")
        message = await error(client, "run_script", name="s", args=["a\x00b"])
    assert message == "A script argument contains a NUL byte; remove it."


async def test_an_interpreter_that_cannot_start_is_a_clear_error(config: ServerConfig) -> None:
    broken = dataclasses.replace(config, kernel_python="/nonexistent/python3")
    async with Client(create_server(broken)) as client:
        await call(client, "save_script", name="s", code="pass\n")
        message = await error(client, "run_script", name="s")
    assert message == (
        "Could not start the kernel's interpreter '/nonexistent/python3' to run the script: it "
        "does not exist or is not executable. The server's kernel interpreter setting needs "
        "fixing; run the code with run_python_code meanwhile."
    )


# a daemon that forks twice, leaves the script's session and lets go of its output; its argv is
# the script's, which names the workspace
DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        open('daemon.started', 'w').close()
        time.sleep(1000)
        os._exit(0)
    os._exit(0)
os.wait()
while not os.path.exists('daemon.started'):
    time.sleep(0.01)
"""


@pytest.mark.skipif(
    find_cgroup_parent() is None, reason="no writable cgroup v2 tree with cgroup.kill here"
)
async def test_a_detached_daemon_the_script_leaves_behind_is_ended(
    config: ServerConfig, workspace: Path, reap_pids: list[int]
) -> None:
    async with Client(create_server(config)) as client:
        await client.call_tool("save_script", {"name": "daemon", "code": DAEMON})
        res = await client.call_tool("run_script", {"name": "daemon"})
    data = res.structured_content
    assert data is not None
    assert (workspace / "daemon.started").exists()
    await wait_none_left(config.workspace_root, reap_pids)
    assert data["exit_code"] == 0
    assert data["killed_processes"] >= 1
    assert "background process(es) the script left running were ended" in data["message"]
