"""A server that dies without cleaning up (SIGKILL) leaves nothing behind: its kernels and what
they started die with it, and its runtime folder (connection files and their keys, ipc sockets)
is removed, at the latest when the next server starts. A live server's folder is never touched."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from python_mcp_server.config import ServerConfig
from python_mcp_server.kernels import LocalBackend
from python_mcp_server.procs.leftovers import OWNER_FILE, claim
from python_mcp_server.sandbox.host import plan_sandbox
from tests.conftest import pid_alive
from tests.helpers import argv_of, kernel_processes, processes_naming
from tests.servers import http_server
from tests.test_http import modern_call

RUNTIME_PREFIX = "python-mcp-server-"
# a daemon: `sh` in a session of its own starts `sleep` in the background and exits, so the
# sleep is an orphan outside the kernel's session and process group, with no parent link to it
DAEMON = (
    "import subprocess\n"
    "subprocess.Popen(['sh', '-c', 'sleep {tag} &'], start_new_session=True).wait()\n"
    "'started'"
)
needs_sandbox = pytest.mark.skipif(
    not plan_sandbox(ServerConfig(sandbox="auto")).enabled, reason="no sandbox on this host"
)


def _tag() -> str:
    """A sleep duration no other process uses: found again in /proc by its command line."""
    return f"{100000 + secrets.randbelow(100000)}.{secrets.randbelow(10**8):08d}"


def _sleepers(tag: str) -> list[int]:
    """The live `sleep <tag>` processes."""
    return [p for p in processes_naming(tag) if argv_of(p)[:1] == ["sleep"]]


def _wait_until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def runtime_folder(server_pid: int) -> Path:
    """The runtime folder of the server `server_pid`: where its kernels' connection files are."""
    top = Path(tempfile.gettempdir())
    for pid in kernel_processes(server_pid):
        argv = argv_of(pid)
        if "-f" in argv:
            path = Path(argv[argv.index("-f") + 1])
            for folder in path.parents:
                if folder.parent == top and folder.name.startswith(RUNTIME_PREFIX):
                    return folder
    raise AssertionError(f"no kernel of server {server_pid} names its runtime folder")


def _start_daemon(client: httpx.Client, url: str, tag: str) -> None:
    answer = modern_call(client, url, 1, "run_python_code", {"code": DAEMON.format(tag=tag)})
    assert "'started'" in answer.text, answer.text
    _wait_until(lambda: bool(_sleepers(tag)), 10, "the daemon to start")


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("sandbox", [pytest.param("on", marks=needs_sandbox), "off"])
def test_a_killed_servers_kernels_and_their_daemons_die_and_its_folder_goes(
    workspace: Path, tmp_path: Path, sandbox: str
) -> None:
    tag = _tag()
    with http_server(workspace, "--sandbox", sandbox) as server, httpx.Client(timeout=60) as c:
        _start_daemon(c, server.url, tag)
        left = kernel_processes(server.process.pid) + _sleepers(tag)
        folder = runtime_folder(server.process.pid)
        assert folder.is_dir()
        server.process.kill()
        server.process.wait(10)
        _wait_until(
            lambda: not any(pid_alive(p) for p in left), 30, f"{left} to die with the server"
        )
    other = tmp_path / "other"
    other.mkdir()
    with http_server(other, "--sandbox", sandbox):
        assert not folder.exists()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_live_servers_folder_survives_another_servers_start_and_stop(
    workspace: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with http_server(workspace) as first, httpx.Client(timeout=60) as client:
        modern_call(client, first.url, 1, "run_python_code", {"code": "x = 1"})
        folder = runtime_folder(first.process.pid)
        with http_server(other) as second:
            modern_call(client, second.url, 1, "run_python_code", {"code": "y = 2"})
            own = runtime_folder(second.process.pid)
        assert not own.exists()  # a server that stops normally removes its own
        assert folder.is_dir()
        answer = modern_call(client, first.url, 2, "run_python_code", {"code": "x + 1"})
        assert '"result":"2"' in answer.text.replace(" ", ""), answer.text


def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def _folder(owner: str | None) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX))
    (folder / "kernel.json").write_text("{}")
    if owner is not None:
        (folder / OWNER_FILE).write_text(owner)
    return folder


def _open_and_close_a_backend() -> None:
    asyncio.run(LocalBackend(use_cgroups=False).aclose())


def test_a_starting_backend_removes_folders_of_servers_no_longer_running() -> None:
    dead = _folder(f"{_dead_pid()} 1\n")
    reused = _folder(f"{os.getpid()} 1\n")  # our pid, but a start time that is not ours
    try:
        _open_and_close_a_backend()
        assert not dead.exists()
        assert not reused.exists()
    finally:
        for folder in (dead, reused):
            shutil.rmtree(folder, ignore_errors=True)


def test_a_starting_backend_leaves_live_unmarked_and_foreign_folders_alone() -> None:
    live = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX))
    claim(live)  # this process: alive
    unmarked = _folder(None)  # a server still creating its folder, or an older version's
    foreign = _folder(f"{_dead_pid()} 1\n")
    folders = [live, unmarked, foreign]
    try:
        if os.geteuid() == 0:
            os.chown(foreign, 65534, 65534)
        else:
            folders.remove(foreign)
        _open_and_close_a_backend()
        assert [f for f in folders if not f.exists()] == []
    finally:
        for folder in (live, unmarked, foreign):
            shutil.rmtree(folder, ignore_errors=True)


NO_CGROUP_CHILD = "tests.backend_child"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_without_cgroups_a_killed_servers_kernel_and_its_children_die(tmp_path: Path) -> None:
    """Where no cgroup can hold a kernel, the watchdog ends the processes the dead server's
    kernels started that it can still find: descendants, and members of the kernel's session."""
    tag = _tag()
    log = tmp_path / "child.log"
    with log.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", NO_CGROUP_CHILD, str(tmp_path), tag],
            stdout=subprocess.PIPE,
            stderr=sink,
            cwd=Path(__file__).resolve().parents[1],
        )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready.startswith(b"ready"), log.read_text()
        _wait_until(lambda: len(_sleepers(tag)) == 2, 10, "the children to start")
        left = kernel_processes(child.pid) + _sleepers(tag)
        folder = runtime_folder(child.pid)
        child.kill()
        child.wait(10)
        _wait_until(lambda: not any(pid_alive(p) for p in left), 30, f"{left} to die")
        _wait_until(lambda: not folder.exists(), 10, f"{folder} to be removed")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
