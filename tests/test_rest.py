"""The REST API (docs/rest.md) against the real server on a loopback port, with raw httpx: the
curl examples of the docs, errors, the guards (played as an attacker), the event stream, a client
that goes away, one-shot runs, and the OpenAPI document."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openapi_spec_validator import validate

from python_mcp_server.config import ServerConfig
from python_mcp_server.rest.execute import MAX_PENDING_CHARS, _Events, event
from python_mcp_server.tools import TOOLS
from tests.helpers import SLEEP_UNTIL_INTERRUPTED, kernel_interpreters
from tests.servers import RunningServer, http_server, threaded_http_server

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(180)]

JSON = {"Content-Type": "application/json"}
HELLO = {"name": "execute_python", "arguments": {"code": 'print("Hello from MCP!")'}}
COUNT = {
    "name": "execute_python",
    "arguments": {
        "code": 'import time\nfor i in range(5):\n    print(f"Count: {i}")\n    time.sleep(1)'
    },
}
INSTALL = {"name": "install_dependencies", "arguments": {"packages": ["requests", "numpy"]}}


@pytest.fixture(scope="module")
def shared_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("rest") / "workspace"
    workspace.mkdir()
    return workspace


@pytest.fixture(scope="module")
def server(shared_workspace: Path) -> Iterator[RunningServer]:
    """One server for the tests that change nothing the others see."""
    with http_server(shared_workspace, "--kernel-pool-size", "1") as running:
        yield running


def events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event name, decoded data) of each Server-Sent Event; comments are skipped."""
    name, data = "message", ""
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield name, json.loads(data)
            name, data = "message", ""


def stream(client: httpx.Client, url: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events(response.iter_lines()))


def wait_until(check: Any, what: str = "", timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


# ---------------------------------------------------------------- the examples


def test_the_curl_examples_work_as_documented(server: RunningServer) -> None:
    base = server.base
    with httpx.Client(timeout=120) as client:
        health = client.get(f"{base}/health")
        tools = client.get(f"{base}/tools")
        hello = client.post(f"{base}/execute", headers=JSON, content=json.dumps(HELLO))
        counted = stream(client, f"{base}/execute/stream", COUNT)
        # the last example of the brief sends no Content-Type (curl -d: a form type)
        installed = client.post(
            f"{base}/execute",
            content=json.dumps(INSTALL),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert health.json()["status"] == "ok"
    assert "execute_python" in {t["name"] for t in tools.json()["tools"]}
    assert hello.status_code == 200, hello.text
    assert (hello.json()["status"], hello.json()["stdout"]) == ("ok", "Hello from MCP!\n")
    printed = "".join(data["text"] for name, data in counted if name == "output")
    assert printed == "".join(f"Count: {i}\n" for i in range(5))
    assert [name for name, _ in counted][-1] == "result"
    assert counted[-1][1]["stdout"] == printed
    assert installed.status_code == 200, installed.text
    statuses = {p["name"]: p["status"] for p in installed.json()["packages"]}
    assert set(statuses) == {"requests", "numpy"}


def test_tools_lists_every_tool_with_its_schemas(server: RunningServer) -> None:
    listed = httpx.get(f"{server.base}/tools", timeout=30).json()["tools"]
    assert {t["name"] for t in listed} == {fn.__name__ for fn in TOOLS}
    for tool in listed:
        assert tool["description"], tool["name"]
        assert tool["input_schema"]["type"] == "object", tool["name"]
        assert tool["output_schema"]["type"] == "object", tool["name"]
        assert "$ref" not in json.dumps(tool["input_schema"]), tool["name"]
    run = next(t for t in listed if t["name"] == "execute_python")
    assert set(run["input_schema"]["properties"]) == {"code", "dependencies", "timeout_s"}


def test_user_code_errors_are_results_and_request_errors_are_4xx(server: RunningServer) -> None:
    url = f"{server.base}/execute"
    with httpx.Client(timeout=60) as client:
        raised = client.post(url, json={"name": "execute_python", "arguments": {"code": "1/0"}})
        slow = client.post(
            url,
            json={
                "name": "execute_python",
                "arguments": {"code": "import time\ntime.sleep(30)", "timeout_s": 0.5},
            },
        )
        unknown = client.post(url, json={"name": "run", "arguments": {"code": "1"}})
        missing = client.post(url, json={"name": "run_python_code", "arguments": {"cod": "1"}})
        typed = client.post(url, json={"name": "execute_python", "arguments": {"code": 5}})
        session = client.post(
            url, json={"name": "run_python_code", "arguments": {"code": "1", "session_id": "x"}}
        )
        not_json = client.post(url, headers=JSON, content=b"{name: run}")
        listed = client.post(url, json=["run_python_code"])
        extra = client.post(url, json={"name": "ping", "args": {}})
        args = client.post(url, json={"name": "ping", "arguments": [1]})
        empty = client.post(url, headers=JSON)
        get = client.get(url)
        refused_stream = client.post(f"{url}/stream", json={"name": "execute_python"})
    assert raised.status_code == 200
    assert (raised.json()["status"], raised.json()["error"]["ename"]) == (
        "error",
        "ZeroDivisionError",
    )
    assert slow.status_code == 200, slow.text
    assert slow.json()["status"] == "timeout"
    assert "interrupted" in slow.json()["message"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "unknown_tool"
    assert "Unknown tool 'run'" in unknown.json()["error"]["message"]
    assert "run_python_code" in unknown.json()["error"]["message"]
    for bad in (missing, typed):
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["type"] == "invalid_arguments"
    assert "code: Missing required argument" in missing.json()["error"]["message"]
    assert "cod: Unexpected keyword argument" in missing.json()["error"]["message"]
    assert session.status_code == 404
    assert "No session 'x'" in session.json()["error"]["message"]
    for bad in (not_json, listed, extra, args, empty):
        assert bad.status_code == 400, bad.text
        assert '{"name": "<tool>", "arguments": {...}}' in bad.json()["error"]["message"]
    assert "not valid JSON" in not_json.json()["error"]["message"]
    assert "Unknown field(s) 'args'" in extra.json()["error"]["message"]
    assert get.status_code == 405
    # a stream refused before it began is a plain JSON answer
    assert refused_stream.status_code == 422
    assert refused_stream.headers["content-type"] == "application/json"
    assert "code: Missing required argument" in refused_stream.json()["error"]["message"]


# ---------------------------------------------------------------- the guards


def test_an_attacker_without_the_token_or_from_another_site_gets_nothing_run(
    workspace: Path,
) -> None:
    token = "s3cret-token-of-some-length"
    marker = workspace / "pwned"
    attack = {"name": "execute_python", "arguments": {"code": "open('pwned', 'w').close()"}}
    good = {"Authorization": f"Bearer {token}"}
    with http_server(workspace, "--auth-token", token) as server, httpx.Client(timeout=60) as c:
        base = server.base
        answers: dict[str, httpx.Response] = {}
        for path in ("/execute", "/execute/stream"):
            answers[f"none {path}"] = c.post(f"{base}{path}", json=attack)
            answers[f"wrong {path}"] = c.post(
                f"{base}{path}", json=attack, headers={"Authorization": "Bearer nope"}
            )
            answers[f"basic {path}"] = c.post(
                f"{base}{path}", json=attack, headers={"Authorization": f"Basic {token}"}
            )
            # a page of another site, even with the token (stolen), is refused
            answers[f"origin {path}"] = c.post(
                f"{base}{path}", json=attack, headers={**good, "Origin": "http://evil.example"}
            )
            answers[f"null origin {path}"] = c.post(
                f"{base}{path}", json=attack, headers={**good, "Origin": "null"}
            )
            # DNS rebinding: the browser names the attacker's host
            answers[f"host {path}"] = c.post(
                f"{base}{path}", json=attack, headers={**good, "Host": "evil.example"}
            )
            # a same-origin page posting a plain form (no preflight) must send JSON
            answers[f"form {path}"] = c.post(
                f"{base}{path}",
                content=json.dumps(attack),
                headers={
                    **good,
                    "Content-Type": "text/plain",
                    "Origin": base,
                    "Sec-Fetch-Site": "same-origin",
                },
            )
        # an <img> or <script> of another site's page: no Origin, but the browser says whence
        answers["cross-site resource"] = c.get(
            f"{base}/resource",
            params={"uri": "workspace://token"},
            headers={**good, "Sec-Fetch-Site": "cross-site"},
        )
        answers["cross-site post"] = c.post(
            f"{base}/execute", json=attack, headers={**good, "Sec-Fetch-Site": "same-site"}
        )
        big = {"name": "execute_python", "arguments": {"code": "#" * 5_000_000}}
        answers["oversized"] = c.post(f"{base}/execute", json=big, headers=good)
        for path in ("/tools", "/openapi.json", "/resource?uri=workspace://x"):
            answers[f"none {path}"] = c.get(f"{base}{path}")
        health = c.get(f"{base}/health")
        tools = c.get(f"{base}/tools", headers=good)
        ran = c.post(f"{base}/execute", json=HELLO, headers=good)
        document = c.get(f"{base}/openapi.json", headers=good).json()
    statuses = {what: response.status_code for what, response in answers.items()}
    expected: dict[str, int] = {}
    for path in ("/execute", "/execute/stream"):
        expected |= {
            f"none {path}": 401,
            f"wrong {path}": 401,
            f"basic {path}": 401,
            f"origin {path}": 403,
            f"null origin {path}": 403,
            f"host {path}": 421,
            f"form {path}": 415,
        }
    expected |= {"oversized": 413, "none /tools": 401, "none /openapi.json": 401}
    expected |= {"cross-site resource": 403, "cross-site post": 403}
    expected["none /resource?uri=workspace://x"] = 401
    assert statuses == expected
    assert not marker.exists()
    message = answers["none /execute"].json()["error"]["message"]
    assert "Authorization: Bearer <token>" in message
    assert "application/json" in answers["form /execute"].json()["error"]["message"]
    assert "over the HTTP limit" in answers["oversized"].json()["error"]["message"]
    assert (health.status_code, tools.status_code, ran.status_code) == (200, 200, 200)
    assert ran.json()["stdout"] == "Hello from MCP!\n"
    assert document["security"] == [{"bearer": []}]


# ---------------------------------------------------------------- the stream


def test_output_is_streamed_before_the_cell_ends(
    server: RunningServer, shared_workspace: Path
) -> None:
    go = shared_workspace / "go"  # the cell sees only the workspace (it may be sandboxed)
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.02)\n"
        "print('second')\n"
        "'done'"
    )
    body = {"name": "run_python_code", "arguments": {"code": code, "session_id": ""}}
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{server.base}/execute/stream", json=body) as response,
    ):
        assert response.status_code == 200
        received = events(response.iter_lines())
        first = next(received)
        assert first == ("output", {"stream": "stdout", "text": "first\n"})
        assert not go.exists()  # the cell is still waiting for it
        go.touch()
        rest = list(received)
    assert ("output", {"stream": "stdout", "text": "second\n"}) in rest
    name, result = rest[-1]
    assert name == "result"
    assert (result["status"], result["stdout"], result["result"]) == (
        "ok",
        "first\nsecond\n",
        "'done'",
    )


def test_stderr_and_errors_come_as_events(server: RunningServer) -> None:
    code = "import sys\nprint('oops', file=sys.stderr)\nraise ValueError('bad')"
    with httpx.Client(timeout=60) as client:
        got = stream(
            client,
            f"{server.base}/execute/stream",
            {"name": "execute_python", "arguments": {"code": code}},
        )
        session = stream(
            client,
            f"{server.base}/execute/stream",
            {"name": "interrupt_kernel", "arguments": {"session_id": "nope"}},
        )
    assert ("output", {"stream": "stderr", "text": "oops\n"}) in got
    assert got[-1][0] == "result"
    assert got[-1][1]["error"]["ename"] == "ValueError"
    # the tool accepted its arguments, so the stream began; its refusal is the last event
    assert session == [
        (
            "error",
            {
                "status": 404,
                "error": {"type": "not_found", "message": session[0][1]["error"]["message"]},
            },
        )
    ]
    assert "No session 'nope'" in session[0][1]["error"]["message"]


async def post_and_leave(url: str, body: dict[str, Any], marker: Path) -> None:
    """POST `body`, then close the connection once the cell has made `marker`, whether or not
    an answer began."""
    async with httpx.AsyncClient(timeout=60) as client, anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(client.post, url, json=body))
        with anyio.fail_after(30):
            while not marker.exists():
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()


def test_a_client_that_goes_away_interrupts_its_cell(workspace: Path) -> None:
    body = {"name": "run_python_code", "arguments": {"code": SLEEP_UNTIL_INTERRUPTED}}
    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        for path in ("/execute/stream", "/execute"):
            for name in ("started", "interrupted"):
                (workspace / name).unlink(missing_ok=True)
            anyio.run(post_and_leave, f"{server.base}{path}", body, workspace / "started")
            wait_until((workspace / "interrupted").exists, f"the interrupt after {path}")
        after = client.post(
            f"{server.base}/execute",
            json={"name": "run_python_code", "arguments": {"code": "6 * 7"}},
        )
    assert after.json()["result"] == "42"


def test_a_one_shot_run_whose_client_goes_away_is_stopped(workspace: Path) -> None:
    code = (
        "import os, time\n"
        "open('started', 'w').close()\n"
        "while not os.path.exists('go'):\n"
        "    time.sleep(0.02)\n"
        "open('late', 'w').close()"
    )
    body = {"name": "execute_python", "arguments": {"code": code}}
    with http_server(workspace) as server, httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{server.base}/execute/stream", json=body):
            wait_until((workspace / "started").exists)
            assert kernel_interpreters(server.process.pid)
        wait_until(lambda: not kernel_interpreters(server.process.pid))
        (workspace / "go").touch()
        sessions = client.post(f"{server.base}/execute", json={"name": "list_sessions"}).json()
    assert not (workspace / "late").exists()  # its kernel is gone: nothing can write it
    assert sessions["sessions"] == []


def test_a_silent_cell_gets_keepalives(config: ServerConfig) -> None:
    code = "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.02)\n'done'"
    body = {"name": "execute_python", "arguments": {"code": code}}
    with (
        threaded_http_server(config, keepalive_s=0.2) as base,
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{base}/execute/stream", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line) == ": keepalive"  # before the cell ends
        (config.workspace_root / "go").touch()
        rest = list(events(lines))
    assert [name for name, _ in rest] == ["result"]
    assert rest[0][1]["result"] == "'done'"


def test_the_stream_joins_pieces_and_says_what_a_slow_reader_missed() -> None:
    pending = _Events()
    pending.output("stdout", "a")
    pending.output("stdout", "b")
    pending.output("stderr", "!")
    pending.output("stdout", "c")
    joined = pending.take()
    for n in range(3):
        pending.output("stdout", str(n) * (MAX_PENDING_CHARS // 2))
    kept = pending.take()
    assert joined == [
        event("output", {"stream": "stdout", "text": "ab"}),
        event("output", {"stream": "stderr", "text": "!"}),
        event("output", {"stream": "stdout", "text": "c"}),
    ]
    data = [json.loads(e.decode().split("data: ", 1)[1]) for e in kept]
    assert data[0]["dropped"] == MAX_PENDING_CHARS // 2  # the oldest piece
    assert "".join(d["text"] for d in data) == "1" * (MAX_PENDING_CHARS // 2) + "2" * (
        MAX_PENDING_CHARS // 2
    )
    assert all("dropped" not in d for d in data[1:])


# ---------------------------------------------------------------- one-shot runs


def test_execute_python_leaves_no_session_and_no_files(workspace: Path) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "x = 41\n"
        "plt.plot([1, 2, 3]); plt.show()\n"
        "print('y' * 50_000)"
    )
    with (
        http_server(
            workspace, "--oneshot-outputs-keep", "0", "--max-output-chars", "1000"
        ) as server,
        httpx.Client(timeout=60) as client,
    ):
        url = f"{server.base}/execute"
        first = client.post(url, json={"name": "execute_python", "arguments": {"code": code}})
        second = client.post(url, json={"name": "execute_python", "arguments": {"code": "x"}})
        sessions = client.post(url, json={"name": "list_sessions"}).json()
        outputs = workspace / "outputs"
        wait_until(lambda: not any(outputs.iterdir()))
        wait_until(lambda: not kernel_interpreters(server.process.pid))
        image = first.json()["images"][0]["uri"]
        gone = client.get(f"{server.base}/resource", params={"uri": image})
    run = first.json()
    assert run["status"] == "ok", run
    assert run["session_id"].startswith("oneshot-")
    assert image.startswith(f"kernel://{run['session_id']}/")
    assert run["output_files"]  # the long output went to a file of the run
    assert second.json()["error"]["ename"] == "NameError"  # nothing carried over
    assert second.json()["session_id"] != run["session_id"]
    assert sessions["sessions"] == []
    assert sorted(p.name for p in workspace.iterdir()) == ["outputs", "scripts", "uploads"]
    assert gone.status_code == 404
    assert "one-shot run" in gone.json()["error"]["message"]


def test_resources_of_a_result_can_be_read(server: RunningServer) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\nopen('t.txt', 'w').write('hi')"
    with httpx.Client(timeout=60) as client:
        run = client.post(
            f"{server.base}/execute", json={"name": "execute_python", "arguments": {"code": code}}
        ).json()
        image = client.get(f"{server.base}/resource", params={"uri": run["images"][0]["uri"]})
        written = next(f for f in run["files"] if f["path"] == "t.txt")
        download = client.get(
            f"{server.base}/resource", params={"uri": written["uri"], "download": "1"}
        )
        bad = client.get(f"{server.base}/resource", params={"uri": "file:///etc/passwd"})
        missing = client.get(f"{server.base}/resource")
        outside = client.get(f"{server.base}/resource", params={"uri": "workspace://../x"})
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert download.content == b"hi"
    assert download.headers["content-disposition"] == 'attachment; filename="t.txt"'
    assert bad.status_code == 400
    how = "Pass the resource as ?uri=<kernel://... or workspace://... URI> (URL-encoded), as a "
    assert bad.json()["error"]["message"] == f"{how}result gave it; got 'file:///etc/passwd'."
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == f"{how}result gave it; got no uri."
    assert outside.status_code in (403, 404), outside.text


# ---------------------------------------------------------------- OpenAPI


def test_the_openapi_document_is_valid_and_covers_every_tool(server: RunningServer) -> None:
    document = httpx.get(f"{server.base}/openapi.json", timeout=30).json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    names = {fn.__name__ for fn in TOOLS}
    assert set(schemas["ToolCall"]["discriminator"]["mapping"]) == names
    for name in names:
        assert schemas[f"{name}.call"]["properties"]["name"] == {"const": name}
        assert schemas[f"{name}.result"]["type"] == "object"
    assert {"/health", "/tools", "/execute", "/execute/stream", "/openapi.json"} <= set(
        document["paths"]
    )
