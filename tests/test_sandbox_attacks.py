"""The attacker's view: each test runs an attack from inside a cell of session A and asserts that
the sandbox contained it, that a sibling session B kept its state (`x = 41` before, `x + 1 == 42`
after) and, where the attack aims at it, that the server still answers.

Cells report what they saw as one JSON line on stdout; the host side of each check (pids,
connection files, files that must not appear) is read from `/proc` and the filesystem directly.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import secrets
import socket
import sys
import sysconfig
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastmcp import Client

import python_mcp_server
from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from tests.conftest import pid_alive
from tests.helpers import call, start_cell, wait_for_file
from tests.servers import http_server
from tests.test_http import modern_call

SANDBOX = plan_sandbox(ServerConfig(sandbox="auto")).enabled

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not SANDBOX, reason="this host cannot sandbox kernels (bubblewrap)"),
]

REFUSED = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS}

# `expr` evaluated in the cell: ["ok", repr] or ["OSError", errno] or [exception name, text]
ATTEMPT = """import json as _json
try:
    _r = {expr}
except OSError as _e:
    print(_json.dumps(["OSError", _e.errno]))
except Exception as _e:
    print(_json.dumps([type(_e).__name__, str(_e)]))
else:
    print(_json.dumps(["ok", repr(_r)]))"""


def sandboxed(config: ServerConfig, **changes: Any) -> ServerConfig:
    return dataclasses.replace(config, sandbox="on", **changes)


async def run(client: Client[Any], sid: str, code: str, **args: Any) -> dict[str, Any]:
    return await call(client, "run_python_code", code=code, session_id=sid, **args)


async def report(client: Client[Any], sid: str, code: str) -> Any:
    """The JSON the cell printed last; the cell itself must have succeeded."""
    res = await run(client, sid, code)
    assert res["status"] == "ok", res
    return json.loads(res["stdout"].strip().splitlines()[-1])


def failed(outcome: list[Any], errnos: set[int]) -> bool:
    """Whether an `attempt` raised OSError with one of `errnos`."""
    return outcome[0] == "OSError" and outcome[1] in errnos


async def attempt(client: Client[Any], sid: str, expr: str) -> list[Any]:
    outcome = await report(client, sid, ATTEMPT.format(expr=expr))
    assert isinstance(outcome, list)
    return outcome


@asynccontextmanager
async def attacker_and_sibling(client: Client[Any], **limits: int) -> AsyncIterator[dict[str, int]]:
    """Sessions `a` (the attacker, with `limits`) and `b` (holding `x = 41`); yields their
    kernel pids, and on exit checks that B kept its state and the server answers."""
    await call(client, "create_session", session_id="a", **limits)
    await call(client, "create_session", session_id="b")
    assert (await run(client, "b", "x = 41"))["status"] == "ok"
    yield await kernel_pids(client)
    await sibling_survives(client)


async def kernel_pids(client: Client[Any]) -> dict[str, int]:
    listed = await call(client, "list_sessions")
    return {s["session_id"]: s["kernel_pid"] for s in listed["sessions"]}


async def sibling_survives(client: Client[Any]) -> None:
    with anyio.fail_after(30):
        await call(client, "ping")
        res = await run(client, "b", "x + 1")
    assert (res["status"], res["result"]) == ("ok", "42"), res


def connection_file(kernel_pid: int) -> Path:
    """The connection file a kernel was started with (its `-f` argument), read on the host."""
    argv = Path(f"/proc/{kernel_pid}/cmdline").read_bytes().split(b"\0")
    return Path(os.fsdecode(argv[argv.index(b"-f") + 1]))


def parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    level = [pid]
    while level:
        nxt: list[int] = []
        for p in level:
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    nxt += [int(c) for c in (task / "children").read_text().split()]
                except OSError:
                    continue
        level = [c for c in nxt if c not in found]
        found.update(level)
    return found


def pids_with_arg(arg: str) -> list[int]:
    """Host processes with `arg` as one of their arguments."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


async def wait_until_gone(pids: set[int], timeout_s: float = 15) -> None:
    with anyio.fail_after(timeout_s):
        while any(pid_alive(p) for p in pids):
            await anyio.sleep(0.05)


# 1. host secrets ------------------------------------------------------------------------------


def _runtime_entries_under_root() -> set[str]:
    """What the Python runtime needs under /root (a pyenv interpreter lives there on some hosts)."""
    needed = set()
    for prefix in {sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)}:
        parts = Path(prefix).parts
        if len(parts) > 2 and parts[1] == "root":
            needed.add(parts[2])
    return needed


@pytest.mark.parametrize(
    "expr",
    [
        "open('/etc/shadow').read()",
        "open('/etc/gshadow').read()",
        "open('/root/.bashrc').read()",
        "os.listdir('/root/.ssh')",
        "os.listdir('/home')",
        "open(HOST_FILE).read()",
    ],
)
async def test_a_cell_cannot_read_host_secrets(config: ServerConfig, expr: str) -> None:
    host_file = config.workspace_root.parent / "secret.txt"
    host_file.write_text("host secret")
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        code = f"import os\nHOST_FILE = {str(host_file)!r}\n"
        outcome = await report(client, "a", code + ATTEMPT.format(expr=expr))
    assert failed(outcome, REFUSED), outcome


async def test_a_cell_sees_a_synthetic_etc_and_only_the_runtime_under_root(
    config: ServerConfig,
) -> None:
    code = (
        "import os, json\n"
        "users = [l.split(':')[0] for l in open('/etc/passwd').read().splitlines() if l]\n"
        "root = sorted(os.listdir('/root')) if os.path.isdir('/root') else []\n"
        "print(json.dumps({'users': users, 'root': root}))"
    )
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        seen = await report(client, "a", code)
    assert seen["users"] == ["root", "sandbox"]
    assert not {".ssh", ".bashrc", ".profile"} & set(seen["root"])
    assert set(seen["root"]) <= _runtime_entries_under_root()


# 2. the server's token ------------------------------------------------------------------------

# Looks for the token (passed reversed, so the cell's own code never holds it) in every
# /proc/<pid>/ file and top-level /proc file it can read, and every file under /tmp, /etc and
# the workspace; also lists the pids it can see.
FIND_TOKEN = """import json, os, stat
token = REVERSED[::-1].encode()
SKIP = {'mem', 'pagemap', 'clear_refs', 'kmsg', 'kcore', 'kpagecount', 'kpageflags',
        'kpagecgroup', 'sysrq-trigger'}
hits, scanned = [], 0
def scan(path):
    global scanned
    if os.path.basename(path) in SKIP:
        return
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        data = os.read(fd, 1 << 24)
    except OSError:
        return
    finally:
        os.close(fd)
    scanned += 1
    if token in data:
        hits.append(path)
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
for name in os.listdir('/proc'):
    scan('/proc/' + name)
for pid in pids:
    for name in os.listdir(f'/proc/{pid}'):
        scan(f'/proc/{pid}/{name}')
for top in ('/tmp', '/etc', '/dev/shm', os.getcwd()):
    for folder, _, files in os.walk(top):
        for name in files:
            scan(os.path.join(folder, name))
print(json.dumps({'hits': hits, 'scanned': scanned, 'pids': pids, 'me': os.getpid(),
                  'in_environ': any(token.decode() in v for v in os.environ.values())}))"""


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["environment", "argv"])
async def test_a_cell_cannot_find_the_http_servers_token(workspace: Path, how: str) -> None:
    token = secrets.token_hex(24)
    args: tuple[str, ...] = ("--sandbox", "on")
    env: dict[str, str] = {}
    if how == "argv":
        args += ("--auth-token", token)
    else:
        env["PYTHON_MCP_SERVER_AUTH_TOKEN"] = token
    with http_server(workspace, *args, env=env) as server:
        async with Client(server.url, auth=token) as client, attacker_and_sibling(client):
            seen = await report(client, "a", f"REVERSED = {token[::-1]!r}\n{FIND_TOKEN}")
        assert server.process.poll() is None
    assert seen["hits"] == []
    assert seen["in_environ"] is False
    assert seen["scanned"] > 50  # the scan did read the /proc files and the folders
    assert seen["pids"] == sorted({1, seen["me"]})  # its own pid namespace


# 3. connection files of other kernels ----------------------------------------------------------

SEE_CONNECTIONS = """import glob, json, os, socket
seen = sorted(glob.glob('/tmp/python-mcp-server-*/**', recursive=True))
tried = {}
for path, ipc in TARGETS:
    try:
        open(path).read()
        tried[path] = 'read'
    except OSError as e:
        tried[path] = e.errno
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(ipc)
        tried[ipc] = 'connected'
    except OSError as e:
        tried[ipc] = e.errno
    finally:
        s.close()
print(json.dumps({'seen': seen, 'tried': tried}))"""


def shell_socket(conn: Path) -> str:
    info = json.loads(conn.read_text())
    return f"{info['ip']}-{info['shell_port']}"


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_cell_cannot_reach_other_kernels_connection_files(config: ServerConfig) -> None:
    other = dataclasses.replace(config, workspace_dir=config.workspace_root.parent / "other")
    other.workspace_dir.mkdir()
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client) as pids,
        Client(create_server(sandboxed(other))) as other_client,
    ):
        await call(other_client, "create_session", session_id="c")
        assert (await run(other_client, "c", "secret = 7"))["status"] == "ok"
        c_pid = (await kernel_pids(other_client))["c"]
        targets = [connection_file(pids["b"]), connection_file(c_pid)]
        pairs = [(str(t), shell_socket(t)) for t in targets]
        seen = await report(client, "a", f"TARGETS = {pairs!r}\n{SEE_CONNECTIONS}")
        own_dir = connection_file(pids["a"]).parent
        assert (await run(other_client, "c", "secret"))["result"] == "7"
    assert set(seen["tried"].values()) <= {errno.ENOENT, errno.EACCES}, seen["tried"]
    for path in seen["seen"]:
        assert (
            own_dir == Path(path) or own_dir in Path(path).parents or Path(path) == own_dir.parent
        )


# 4. signals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["sibling kernel", "server"])
async def test_a_cell_cannot_kill_a_sibling_kernel_or_the_server(
    config: ServerConfig, target: str
) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client) as pids,
    ):
        pid = pids["b"] if target == "sibling kernel" else os.getpid()
        outcome = await attempt(client, "a", f"__import__('os').kill({pid}, 9)")
        assert pid_alive(pid)
    assert failed(outcome, {errno.ESRCH, errno.EPERM}), outcome


async def test_kill_minus_one_in_a_cell_reaches_neither_the_server_nor_a_sibling(
    config: ServerConfig,
) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client) as pids,
    ):
        await call(client, "run_python_code", code="import os, signal", session_id="a")
        with anyio.fail_after(30):
            await client.call_tool(
                "run_python_code",
                {"code": "os.kill(-1, signal.SIGKILL)", "session_id": "a"},
                raise_on_error=False,
            )
        after = await run(client, "a", "1 + 1")
        assert pid_alive(pids["b"])
    assert (after["status"], after["result"]) == ("ok", "2"), after


# 5. network -----------------------------------------------------------------------------------


async def test_a_cell_cannot_connect_to_a_listener_on_the_hosts_loopback(
    config: ServerConfig,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        async with (
            Client(create_server(sandboxed(config))) as client,
            attacker_and_sibling(client),
        ):
            expr = f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=5)"
            outcome = await attempt(client, "a", expr)
    assert outcome == ["OSError", errno.ECONNREFUSED]


CALL_BACK = """import json, urllib.error, urllib.request
try:
    urllib.request.urlopen(URL, timeout=5)
    out = 'reached'
except urllib.error.URLError as e:
    out = getattr(e.reason, 'errno', str(e.reason))
print(json.dumps(out))"""


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_cell_cannot_call_back_into_its_http_server(workspace: Path) -> None:
    token = secrets.token_hex(24)
    with http_server(workspace, "--sandbox", "on", "--auth-token", token) as server:
        port = server.base.rsplit(":", 1)[1]
        async with Client(server.url, auth=token) as client, attacker_and_sibling(client):
            url = f"http://127.0.0.1:{port}/health"
            outcome = await report(client, "a", f"URL = {url!r}\n{CALL_BACK}")
            raw = await attempt(
                client, "a", f"__import__('socket').create_connection(('localhost', {port}), 5)"
            )
    assert outcome == errno.ECONNREFUSED
    assert failed(raw, {errno.ECONNREFUSED, errno.EADDRNOTAVAIL}), raw


@pytest.mark.parametrize(
    ("expr", "errnos"),
    [
        (
            "__import__('socket').getaddrinfo('example.com', 80)",
            {socket.EAI_AGAIN, socket.EAI_NONAME, socket.EAI_FAIL},
        ),
        ("__import__('socket').create_connection(('1.1.1.1', 80), timeout=5)", {errno.ENETUNREACH}),
        ("__import__('socket').socket(2, 2).sendto(b'x', ('8.8.8.8', 53))", {errno.ENETUNREACH}),
    ],
    ids=["dns", "tcp", "udp"],
)
async def test_a_cell_cannot_reach_the_internet(
    config: ServerConfig, expr: str, errnos: set[int]
) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        outcome = await attempt(client, "a", expr)
    assert failed(outcome, errnos), outcome


async def test_a_listener_in_a_cell_is_not_reachable_from_the_host(config: ServerConfig) -> None:
    code = (
        "import socket, json\n"
        "srv = socket.socket()\n"
        "srv.bind(('0.0.0.0', 0))\n"
        "srv.listen()\n"
        "print(json.dumps(srv.getsockname()[1]))"
    )
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        port = await report(client, "a", code)
        with socket.socket() as s:
            s.settimeout(5)
            with pytest.raises(ConnectionRefusedError):
                s.connect(("127.0.0.1", port))


# 6. writes outside the workspace --------------------------------------------------------------


def _write_targets(tmp_path: Path) -> dict[str, Path]:
    package = Path(python_mcp_server.__file__).parent
    return {
        "etc": Path("/etc"),
        "usr lib": Path("/usr/lib"),
        "site-packages": Path(sysconfig.get_paths()["purelib"]),
        "base interpreter": Path(os.path.realpath(sys.base_prefix)) / "lib",
        "server source": package,
        "kernel extension": package / "kernel_ext",
        "beside the workspace": tmp_path,
    }


@pytest.mark.parametrize(
    "where",
    [
        "etc",
        "usr lib",
        "site-packages",
        "base interpreter",
        "server source",
        "kernel extension",
        "beside the workspace",
    ],
)
async def test_a_cell_cannot_write_outside_the_workspace(
    config: ServerConfig, tmp_path: Path, where: str
) -> None:
    target = _write_targets(tmp_path)[where] / f"attack-{secrets.token_hex(4)}.py"
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        outcome = await attempt(client, "a", f"open({str(target)!r}, 'w').write('pwned')")
    assert not target.exists()
    assert failed(outcome, REFUSED), outcome


async def test_a_cell_cannot_store_files_on_the_host_through_its_kernel_folder(
    config: ServerConfig,
) -> None:
    """The kernel's own folder (connection file, ipc sockets) is a host folder outside the
    workspace and outside the size-limited /tmp: files written there land on the host's disk."""
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client) as pids,
    ):
        target = connection_file(pids["a"]).parent / "stored.bin"
        outcome = await attempt(client, "a", f"open({str(target)!r}, 'wb').write(b'x' * 4096)")
        landed = target.exists()
    assert failed(outcome, REFUSED), outcome
    assert not landed


async def test_a_cells_tmp_is_private(config: ServerConfig) -> None:
    name = f"/tmp/attack-{secrets.token_hex(4)}"
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        outcome = await attempt(client, "a", f"open({name!r}, 'w').write('x')")
        assert outcome == ["ok", "1"]
        assert not Path(name).exists()
        in_b = await attempt(client, "b", f"open({name!r}).read()")
    assert in_b == ["OSError", errno.ENOENT]


# 7. cgroups -----------------------------------------------------------------------------------

CGROUP_NAMES = ("cgroup.kill", "cgroup.procs", "memory.limit_in_bytes", "memory.max", "pids.max")

WRITE_CGROUPS = f"""import json, os
names = {CGROUP_NAMES!r}
found, wrote = [], []
for folder, _, files in os.walk('/sys/fs/cgroup'):
    for name in files:
        if name in names:
            path = os.path.join(folder, name)
            found.append(path)
            try:
                with open(path, 'w') as f:
                    f.write('1')
                wrote.append(path)
            except OSError:
                pass
print(json.dumps({{'sys': os.path.exists('/sys'), 'found': found, 'wrote': wrote}}))"""

# the same through a nested user namespace that mounts the cgroup filesystems itself (the files
# it may see are its own kernel's groups; cgroup.kill goes last: it would end the cell)
WRITE_CGROUPS_NESTED = """import json, subprocess
script = '''
mkdir -p /tmp/cg2 /tmp/pids /tmp/mem
mount -t cgroup2 none /tmp/cg2 && echo MOUNTED cgroup2
mount -t cgroup -o pids none /tmp/pids && echo MOUNTED pids
mount -t cgroup -o memory none /tmp/mem && echo MOUNTED memory
for f in /tmp/pids/pids.max /tmp/mem/memory.limit_in_bytes /tmp/cg2/cgroup.procs \\
         /tmp/pids/cgroup.procs /tmp/cg2/cgroup.kill; do
  [ -e "$f" ] && (echo 1 > "$f") 2>/dev/null && echo "WROTE $f"
done
exit 0
'''
done = subprocess.run(['unshare', '-UrmC', 'sh', '-c', script], capture_output=True, text=True)
print(json.dumps([l for l in done.stdout.splitlines() if l.startswith('WROTE')]))"""


@pytest.mark.parametrize("how", ["directly", "through a nested user namespace"])
async def test_a_cell_cannot_write_cgroup_files(config: ServerConfig, how: str) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        if how == "directly":
            seen = await report(client, "a", WRITE_CGROUPS)
            assert seen["wrote"] == [], seen
            assert seen["sys"] is False or seen["found"] != []
        else:
            wrote = await report(client, "a", WRITE_CGROUPS_NESTED)
            assert wrote == []


# 8. memory bomb -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_memory_bomb_is_stopped_at_the_sessions_limit(config: ServerConfig) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client, memory_mb=300),
    ):
        await run(client, "a", "y = 1")
        bomb = await run(client, "a", "b = b'x' * 1_000_000_000")
        after = await run(client, "a", "'y' in globals()")
    assert (bomb["status"], bomb["error"]["ename"]) == ("error", "KernelDied"), bomb
    said = " ".join(str(bomb[k]) for k in ("message", "error"))
    assert "out of memory" in said, bomb
    assert "300 MB" in said, bomb
    assert (after["status"], after["result"]) == ("ok", "False"), after


# 9. fork bomb ---------------------------------------------------------------------------------

FORK_BOMB = """import os
open('bomb-started', 'w').close()
while True:
    try:
        os.fork()
    except OSError:
        pass"""


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_fork_bomb_is_contained_and_ends_with_its_session(config: ServerConfig) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client, max_processes=64) as pids,
    ):
        ns_init = parent(pids["a"])
        async with anyio.create_task_group() as tg:
            results = start_cell(tg, client, {"code": FORK_BOMB, "session_id": "a", "timeout_s": 5})
            await wait_for_file(config.workspace_root / "bomb-started")
            with anyio.fail_after(10):
                await call(client, "ping")
        assert results[0]["status"] in {"timeout", "error"}, results[0]
        now = (await kernel_pids(client))["a"]
        tree = {pids["a"], ns_init, now, parent(now)}
        tree |= descendants(ns_init) | descendants(parent(now))
        await call(client, "delete_session", session_id="a")
        await wait_until_gone(tree)


# 10. disk filler ------------------------------------------------------------------------------

FILL = """import json, os
written, err = 0, None
chunk = b'\\0' * (1 << 20)
try:
    with open(FOLDER + '/fill', 'wb', buffering=0) as f:
        while written < (256 << 20):
            written += f.write(chunk)
except OSError as e:
    err = e.errno
os.remove(FOLDER + '/fill')
print(json.dumps([err, written]))"""


@pytest.mark.parametrize("folder", ["/tmp", "/dev/shm"])
async def test_a_disk_filler_hits_the_private_tmp_limit(config: ServerConfig, folder: str) -> None:
    async with (
        Client(create_server(sandboxed(config, kernel_tmp_mb=64))) as client,
        attacker_and_sibling(client),
    ):
        await run(client, "a", "kept = 1")
        err, written = await report(client, "a", f"FOLDER = {folder!r}\n{FILL}")
        after = await run(client, "a", "kept + 1")
    assert err == errno.ENOSPC
    assert 48 << 20 <= written <= 64 << 20
    assert (after["status"], after["result"]) == ("ok", "2"), after


# 11. leftover processes -----------------------------------------------------------------------

LEAVE_BEHIND = """import os, subprocess
subprocess.Popen(['sleep', TAG])
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', TAG])
    os._exit(0)
os.waitpid(pid, 0)"""


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_no_process_a_cell_started_outlives_its_session(config: ServerConfig) -> None:
    tag = f"1000.{secrets.randbelow(10**9)}"
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        res = await run(client, "a", f"TAG = {tag!r}\n{LEAVE_BEHIND}")
        assert res["status"] == "ok", res
        with anyio.fail_after(10):
            while len(started := pids_with_arg(tag)) < 2:
                await anyio.sleep(0.05)
        await call(client, "delete_session", session_id="a")
        await wait_until_gone(set(started))
    assert pids_with_arg(tag) == []


# 12. privileges -------------------------------------------------------------------------------

STATUS = """import json
fields = ('Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
print(json.dumps({k: status[k].split() for k in fields}))"""

# unshare(CLONE_NEWUSER) needs a single-threaded process: try it in a fresh interpreter
NESTED_USERNS = """import json, subprocess, sys
probe = ('import ctypes; libc = ctypes.CDLL(None, use_errno=True); '
         'print(0 if libc.unshare(0x10000000) == 0 else ctypes.get_errno())')
print(json.dumps(int(subprocess.run([sys.executable, '-c', probe], capture_output=True,
                                    text=True, check=True).stdout)))"""


async def test_a_cell_runs_as_nobody_without_capabilities(config: ServerConfig) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        status = await report(client, "a", STATUS)
        setuid = await attempt(client, "a", "__import__('os').setuid(0)")
    zero = ["0000000000000000"]
    assert status == {
        "Uid": ["65534"] * 4,
        "Gid": ["65534"] * 4,
        "Groups": [],
        "CapInh": zero,
        "CapPrm": zero,
        "CapEff": zero,
        "CapBnd": zero,
        "CapAmb": zero,
        "NoNewPrivs": ["1"],
    }
    assert setuid == ["OSError", errno.EPERM]


async def test_a_cell_cannot_make_a_user_namespace(config: ServerConfig) -> None:
    async with (
        Client(create_server(sandboxed(config))) as client,
        attacker_and_sibling(client),
    ):
        failed_with = await report(client, "a", NESTED_USERNS)
    assert failed_with in {errno.EPERM, errno.ENOSPC, errno.EACCES}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_server_leaves_no_sandboxed_kernel_behind(workspace: Path) -> None:
    """SIGKILL gives the server no chance to clean up: bubblewrap's --die-with-parent and the
    pid namespace end the kernel and everything it started."""
    tag = f"pmcp-orphan-{uuid.uuid4().hex[:8]}"
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', "
        f"'{tag}'], start_new_session=True)\n"
        "'started'"
    )
    with http_server(workspace, "--sandbox", "on") as server, httpx.Client(timeout=60) as client:
        answer = modern_call(client, server.url, 1, "run_python_code", {"code": code})
        assert "'started'" in answer.text, answer.text
        assert _tagged(tag)
        server.process.kill()
        server.process.wait(10)
        deadline = time.monotonic() + 30
        while _tagged(tag):
            assert time.monotonic() < deadline, f"processes outlived the server: {_tagged(tag)}"
            time.sleep(0.05)


def _tagged(tag: str) -> list[int]:
    """Host pids whose command line holds `tag`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if tag.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
