"""The Kernel Gateway harness itself: its venv, auth, client env passthrough, interrupts,
TCP_NODELAY, stop/start, culling, and what Kernel Gateway 3 does with `/api/sessions`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import in_ci, pid_alive
from tests.gateway import (
    CACHE_ENV,
    KERNEL_NAME,
    KG_REQUIREMENT,
    SIGNAL_KERNEL_NAME,
    GatewayUnavailableError,
    KernelGateway,
    gateway_venv,
)
from tests.gateway_channel import KernelChannel, gateway_socket_nodelay

pytestmark = pytest.mark.gateway


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_the_gateway_venv_is_its_own_with_our_kernel_side_versions(
    kernel_gateway_venv: Path,
) -> None:
    assert importlib.util.find_spec("kernel_gateway") is None, "KG leaked into our environment"
    assert gateway_venv() == kernel_gateway_venv  # cached: the same folder, not a rebuild
    pins = json.loads((kernel_gateway_venv / "pins.json").read_text())
    assert KG_REQUIREMENT in pins
    report = subprocess.run(
        [
            str(kernel_gateway_venv / "bin" / "python"),
            "-c",
            (
                "import importlib.metadata as m, json; "
                "print(json.dumps({p: m.version(p) for p in ('ipykernel', 'numpy', 'pandas', "
                "'matplotlib', 'jupyter-kernel-gateway')}))"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    theirs = json.loads(report.stdout)
    assert theirs.pop("jupyter-kernel-gateway") == "3.0.1"
    assert theirs == {name: importlib.metadata.version(name) for name in theirs}


@pytest.mark.slow
def test_two_builds_at_once_leave_one_whole_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with ThreadPoolExecutor(2) as pool:
        first, second = (f.result(timeout=120) for f in [pool.submit(gateway_venv) for _ in "ab"])
    assert first == second
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no build folder left behind
    assert json.loads((first / "pins.json").read_text())[0] == KG_REQUIREMENT


def test_without_an_index_or_a_cached_copy_the_build_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "venvs"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_DEFAULT_INDEX", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(GatewayUnavailableError, match="package index is out of reach"):
        gateway_venv()
    assert list((tmp_path / "venvs").iterdir()) == []  # no half-built venv left


def test_ci_means_a_missing_gateway_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("true", True), ("1", True), ("false", False), ("", False)):
        monkeypatch.setenv("CI", value)
        assert in_ci() is expected


def test_the_gateway_answers_only_with_its_token(kernel_gateway: KernelGateway) -> None:
    api = f"{kernel_gateway.url}/api"
    with kernel_gateway.client() as client:
        answer = client.get("/api")
    assert answer.status_code == 200
    assert "version" in answer.json()
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, headers={"Authorization": "token wrong"}).status_code == 401
    bearer = {"Authorization": f"Bearer {kernel_gateway.token}"}
    assert httpx.get(api, headers=bearer).status_code == 401  # KG takes `token`, not Bearer
    assert httpx.get(api, params={"token": kernel_gateway.token}).status_code == 200


def test_the_gateway_offers_our_kernelspecs_only(kernel_gateway: KernelGateway) -> None:
    with kernel_gateway.client() as client:
        specs = client.get("/api/kernelspecs").json()
    assert specs["default"] == KERNEL_NAME
    assert set(specs["kernelspecs"]) == {KERNEL_NAME, SIGNAL_KERNEL_NAME}
    spec = specs["kernelspecs"][KERNEL_NAME]["spec"]
    assert spec["argv"][0] == str(kernel_gateway.venv / "bin" / "python")
    assert spec["interrupt_mode"] == "message"


@pytest.mark.anyio
async def test_a_kernel_gets_the_env_its_client_sent_and_nothing_else(
    kernel_gateway: KernelGateway,
) -> None:
    workspace = kernel_gateway.root_dir / "ws"
    workspace.mkdir(exist_ok=True)
    sent = {
        "KERNEL_USERNAME": "tests",
        "KERNEL_PMCP_SESSION": "s-1",
        "PYTHON_MCP_SERVER_WORKSPACE": str(workspace),
        "MPLBACKEND": "agg",
        "PYTHONUNBUFFERED": "1",
        "NOT_ALLOWED": "x",
    }
    kernel_id = kernel_gateway.start_kernel(env=sent, path="ws")
    async with await KernelChannel.open(kernel_gateway, kernel_id) as channel:
        run = await channel.execute(
            "import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))"
        )
    seen = json.loads(run.stdout)
    env = seen["env"]
    assert {k: env.get(k) for k in sent if k != "NOT_ALLOWED"} == {
        k: v for k, v in sent.items() if k != "NOT_ALLOWED"
    }
    assert "NOT_ALLOWED" not in env
    assert env["KERNEL_GATEWAY"] == "1"
    # the gateway's own environment stays out: its token, its JUPYTER_PATH
    assert "KG_AUTH_TOKEN" not in env
    assert "JUPYTER_PATH" not in env
    assert seen["cwd"] == str(workspace)


@pytest.mark.anyio
@pytest.mark.parametrize("kernel_name", [KERNEL_NAME, SIGNAL_KERNEL_NAME])
async def test_interrupting_a_sleeping_cell_keeps_the_kernel_state(
    kernel_gateway: KernelGateway, kernel_name: str
) -> None:
    kernel_id = kernel_gateway.start_kernel(name=kernel_name, env={"KERNEL_USERNAME": "tests"})
    async with (
        await KernelChannel.open(kernel_gateway, kernel_id) as channel,
        kernel_gateway.async_client() as client,
    ):
        assert (await channel.execute("x = 41")).status == "ok"

        async def interrupt(text: str) -> None:
            if "started" in text:
                answer = await client.post(f"/api/kernels/{kernel_id}/interrupt")
                assert answer.status_code == 204

        run = await channel.execute(
            "import time\nprint('started', flush=True)\ntime.sleep(30)", on_stdout=interrupt
        )
        assert (run.status, run.error_name) == ("error", "KeyboardInterrupt")
        assert (await channel.execute("x + 1")).results == ["42"]


@pytest.mark.anyio
async def test_kernel_websockets_have_tcp_nodelay_on_the_gateway_side(
    kernel_gateway: KernelGateway,
) -> None:
    assert kernel_gateway.pid is not None
    kernel_id = kernel_gateway.start_kernel(env={"KERNEL_USERNAME": "tests"})
    async with await KernelChannel.open(kernel_gateway, kernel_id) as channel:
        try:
            websocket = gateway_socket_nodelay(
                kernel_gateway.pid, kernel_gateway.port, channel.local_port
            )
        except OSError as exc:
            if in_ci():
                raise
            pytest.skip(f"cannot read the gateway's socket options here: {exc}")
    # a plain REST connection, for contrast: the check tells the two apart
    with socket.create_connection(("127.0.0.1", kernel_gateway.port), timeout=10) as plain:
        request = (
            f"GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: token {kernel_gateway.token}\r\n\r\n"
        )
        plain.sendall(request.encode())
        assert plain.recv(4096).startswith(b"HTTP/1.1 200")
        rest = gateway_socket_nodelay(
            kernel_gateway.pid, kernel_gateway.port, plain.getsockname()[1]
        )
    assert (websocket, rest) == (True, False)
    assert f"TCP_NODELAY set on the websocket of kernel {kernel_id}" in kernel_gateway.log_text()


@pytest.mark.anyio
@pytest.mark.parametrize("kill", [False, True], ids=["terminated", "killed"])
async def test_stop_and_start_bring_the_gateway_back_on_its_port_without_kernels(
    kernel_gateway: KernelGateway, kill: bool
) -> None:
    kernel_id = kernel_gateway.start_kernel(env={"KERNEL_USERNAME": "tests"})
    async with await KernelChannel.open(kernel_gateway, kernel_id) as channel:
        kernel_pid = int((await channel.execute("import os; print(os.getpid())")).stdout)
    url, token, pid = kernel_gateway.url, kernel_gateway.token, kernel_gateway.pid
    with kernel_gateway.down(kill=kill):
        assert not kernel_gateway.running
        async with kernel_gateway.async_client() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/api")
        wait_until(lambda: not pid_alive(kernel_pid), f"kernel {kernel_pid} outlived the gateway")
    assert (kernel_gateway.url, kernel_gateway.token) == (url, token)
    assert kernel_gateway.pid != pid
    with kernel_gateway.client() as client:
        assert client.get("/api").status_code == 200
    assert kernel_gateway.kernel_ids() == set()  # Kernel Gateway keeps kernels in memory only


def test_a_paused_gateway_takes_connections_but_never_answers(
    kernel_gateway: KernelGateway,
) -> None:
    kernel_gateway.pause()
    try:
        with pytest.raises(httpx.ReadTimeout), kernel_gateway.client(timeout_s=0.5) as client:
            client.get("/api")
    finally:
        kernel_gateway.resume()
    with kernel_gateway.client() as client:
        assert client.get("/api").status_code == 200


@pytest.mark.slow
def test_an_idle_kernel_is_culled_and_leaves_the_listing(culling_gateway: KernelGateway) -> None:
    kernel_id = culling_gateway.start_kernel(env={"KERNEL_USERNAME": "tests"})
    assert kernel_id in culling_gateway.kernel_ids()
    culling_gateway.wait_for_kernel_gone(kernel_id, deadline_s=30)
    assert f"Culling 'starting' kernel '{KERNEL_NAME}' ({kernel_id})" in culling_gateway.log_text()


def test_kernel_gateway_sessions_keep_only_a_path_and_a_kernel(
    kernel_gateway: KernelGateway,
) -> None:
    """What Kernel Gateway 3.0.1 does with `/api/sessions` (its in-memory `SessionManager`):
    facts the server's design relies on, so an upgrade that changes them fails here."""
    other = kernel_gateway.start_kernel(env={"KERNEL_USERNAME": "tests"})
    with kernel_gateway.client(timeout_s=60) as client:
        body = {
            "path": "pmcp/s-1",
            "name": "alpha",
            "type": "console",
            "kernel": {"name": KERNEL_NAME, "id": other},
        }
        created = client.post("/api/sessions", json=body)
        assert created.status_code == 201
        session = created.json()
        # name and type are dropped; kernel.id is ignored: a new kernel was started
        assert set(session) == {"id", "notebook", "kernel"}
        assert session["notebook"] == {"path": "pmcp/s-1"}
        assert session["kernel"]["id"] != other
        assert session["kernel"]["name"] == KERNEL_NAME
        listed = client.get("/api/sessions").json()
        assert [(s["id"], s["notebook"]) for s in listed] == [(session["id"], session["notebook"])]
        # KG 3's SessionManager.get_session is not async, and jupyter_server awaits it:
        assert client.get(f"/api/sessions/{session['id']}").status_code == 500
        assert client.patch(f"/api/sessions/{session['id']}", json={"path": "x"}).status_code == 500
        assert client.post("/api/sessions", json=body).status_code == 500  # same path again
        # a session whose kernel went away breaks one listing, which drops it
        client.delete(f"/api/kernels/{session['kernel']['id']}")
        assert client.get("/api/sessions").status_code == 500
        assert client.get("/api/sessions").json() == []
        second = client.post("/api/sessions", json={"path": "p2", "type": "console"}).json()
        assert client.delete(f"/api/sessions/{second['id']}").status_code == 204
        assert second["kernel"]["id"] not in kernel_gateway.kernel_ids()


@pytest.mark.slow
def test_list_kernels_off_refuses_both_listings_only(
    start_kernel_gateway: Callable[..., KernelGateway],
) -> None:
    gateway = start_kernel_gateway(list_kernels=False)
    with gateway.client(timeout_s=60) as client:
        assert client.get("/api/kernels").status_code == 403
        assert client.get("/api/sessions").status_code == 403
        kernel = client.post("/api/kernels", json={"name": KERNEL_NAME}).json()
        assert client.get(f"/api/kernels/{kernel['id']}").status_code == 200
        session = client.post("/api/sessions", json={"path": "p", "type": "console"})
        assert session.status_code == 201
        for kernel_id in (kernel["id"], session.json()["kernel"]["id"]):
            assert client.delete(f"/api/kernels/{kernel_id}").status_code == 204
