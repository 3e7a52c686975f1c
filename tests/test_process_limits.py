"""Out of processes: a kernel that cannot start for lack of processes or threads says which
limit was reached and how to lift it, not 'check that ipykernel is installed'."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from tests.helpers import error
from tests.servers import http_server

pytestmark = pytest.mark.anyio

V1_PIDS = Path("/sys/fs/cgroup/pids")


def pids_limits(config: ServerConfig) -> bool:
    plan = plan_sandbox(config)
    return plan.enabled and plan.limits.pids is not None


async def test_a_session_asking_for_too_few_processes_is_refused_naming_the_minimum(
    config: ServerConfig,
) -> None:
    if not pids_limits(config):
        pytest.skip("per-session process limits need the sandbox and the pids controller")
    async with Client(create_server(config)) as client:
        message = await error(client, "create_session", session_id="tiny", max_processes=5)
    assert message == (
        "max_processes=5 is too low: a kernel needs about 16 processes and threads just to "
        "start (ipykernel's own); ask for at least 16, more if the code starts processes or "
        "threads."
    )


async def test_a_kernel_that_cannot_start_within_its_process_limit_says_so(
    config: ServerConfig,
) -> None:
    if not pids_limits(config):
        pytest.skip("per-session process limits need the sandbox and the pids controller")
    config = replace(config, kernel_max_processes=6)
    async with Client(create_server(config)) as client:
        message = await error(client, "create_session", session_id="starved")
        listed = await client.call_tool("list_sessions", {})
    assert message.endswith(
        "could not start within its limit of 6 processes and threads (the session's "
        "max_processes, or the server's --kernel-max-processes): ipykernel alone needs about "
        "16. Create the session with a higher max_processes, or omit it for the server's limit."
    ), message
    assert listed.structured_content is not None
    assert listed.structured_content["sessions"] == []


@contextmanager
def pids_group(pid: int) -> Iterator[Path]:
    """A v1 pids cgroup holding process `pid`, limited to what it holds now; moved back out and
    removed at the end."""
    group = V1_PIDS / f"python-mcp-server-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(pid))
        (group / "pids.max").write_text((group / "pids.current").read_text().strip())
        yield group
    finally:
        (group / "pids.max").write_text("max")
        for member in (group / "cgroup.procs").read_text().split():
            (V1_PIDS / "cgroup.procs").write_text(member)
        group.rmdir()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_server_out_of_processes_says_so_and_serves_again_once_it_has_room(
    workspace: Path,
) -> None:
    if os.geteuid() != 0 or not (V1_PIDS / "cgroup.procs").is_file():
        pytest.skip("needs root and a cgroup v1 pids hierarchy to limit the server's processes")
    with http_server(workspace) as server:
        async with Client(server.url) as client:
            with pids_group(server.process.pid) as group:
                message = await error(client, "create_session", session_id="a")
                (group / "pids.max").write_text("max")
                created = await client.call_tool("create_session", {"session_id": "b"})
    assert re.fullmatch(
        r"The Python kernel \(.*\) could not start: this server has reached its limit on "
        r"processes and threads \(starting one failed with EAGAIN; its cgroup's pids.max is "
        r"\d+, \d+ in use\)\. Delete sessions you no longer need \(delete_session\) and let "
        r"running scripts end, or give the server a higher process limit; then try again\.",
        message,
    ), message
    assert created.structured_content is not None
    assert created.structured_content["session_id"] == "b"
