"""A running cell's output goes out as MCP progress notifications, and a silent cell sends
keepalives, so clients that reset their timeout on progress keep waiting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from tests.servers import http_server

pytestmark = pytest.mark.anyio

# The cell prints, then waits (bounded) for a file the test writes only once progress arrived:
# the result can exist only if the progress came first.
WAIT_FOR_GO = """\
import pathlib, time
print('started', flush=True)
deadline = time.monotonic() + 30
while not pathlib.Path('go').exists() and time.monotonic() < deadline:
    time.sleep(0.02)
print('finished' if pathlib.Path('go').exists() else 'gave up')
"""


class Progress:
    """Collects progress notifications; writes `go` in the workspace when `trigger` shows up."""

    def __init__(self, workspace: Path, trigger: str) -> None:
        self.workspace = workspace
        self.trigger = trigger
        self.seen = anyio.Event()
        self.values: list[float] = []
        self.messages: list[str] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)
        self.messages.append(message or "")
        if self.trigger in (message or "") and not self.seen.is_set():
            (self.workspace / "go").write_text("go")
            self.seen.set()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_stdout_arrives_as_progress_over_http_before_the_result(workspace: Path) -> None:
    progress = Progress(workspace, "started")
    with http_server(workspace) as server:
        async with Client(server.url) as client:
            with anyio.fail_after(60):
                res = await client.call_tool(
                    "run_python_code", {"code": WAIT_FOR_GO}, progress_handler=progress
                )
    assert progress.seen.is_set()
    assert res.structured_content is not None
    assert res.structured_content["stdout"] == "started\nfinished\n"
    assert progress.messages[0] == "started\n"
    assert progress.values == sorted(set(progress.values))


async def test_a_silent_cell_sends_keepalives(config: ServerConfig, workspace: Path) -> None:
    quick = dataclasses.replace(config, progress_keepalive_s=0.2)
    silent = WAIT_FOR_GO.replace("print('started', flush=True)\n", "")
    progress = Progress(workspace, "still running")
    async with Client(create_server(quick)) as client:
        with anyio.fail_after(30):
            res = await client.call_tool(
                "run_python_code", {"code": silent}, progress_handler=progress
            )
    assert res.structured_content is not None
    assert res.structured_content["stdout"] == "finished\n"
    assert progress.messages[0].startswith("still running (")


async def test_stderr_is_streamed_with_a_label(config: ServerConfig, workspace: Path) -> None:
    code = WAIT_FOR_GO.replace(
        "print('started', flush=True)", "import sys; print('warned', file=sys.stderr, flush=True)"
    )
    progress = Progress(workspace, "warned")
    async with Client(create_server(config)) as client:
        with anyio.fail_after(30):
            await client.call_tool("run_python_code", {"code": code}, progress_handler=progress)
    assert progress.messages[0] == "[stderr] warned\n"


async def test_a_chatty_cell_is_batched_into_few_bounded_messages(
    config: ServerConfig, workspace: Path
) -> None:
    code = WAIT_FOR_GO.replace(
        "print('started', flush=True)",
        "for i in range(20000):\n    print(f'row {i}')\nprint('started', flush=True)",
    )
    progress = Progress(workspace, "started")
    async with Client(create_server(config)) as client:
        with anyio.fail_after(30):
            await client.call_tool("run_python_code", {"code": code}, progress_handler=progress)
    assert progress.seen.is_set()
    assert len(progress.messages) < 50
    assert all(len(m) < 2200 for m in progress.messages)
    assert any(
        "characters not streamed; all output is in the result" in m for m in progress.messages
    )


async def test_without_a_progress_handler_the_cell_runs_as_usual(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": "print('plain')"})
    assert res.structured_content is not None
    assert res.structured_content["stdout"] == "plain\n"
