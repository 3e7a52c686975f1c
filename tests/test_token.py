"""The HTTP token, served for real: however it is given, the server's /proc command line and
environment do not show it, and no kernel or script gets it in its environment."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client

from tests.helpers import call
from tests.servers import http_server

pytestmark = [pytest.mark.anyio, pytest.mark.kernel, pytest.mark.timeout(120)]

# Run in an unsandboxed kernel and in a script: the token (given reversed, so that the code sent
# does not hold it) in this process's environment, or in the server's /proc files.
FIND_TOKEN = """\
import json, os
token = REVERSED[::-1].encode()
def shows(path):
    with open(path, 'rb') as f:
        return token in f.read()
print(json.dumps({
    'environ': any(token in v.encode() for v in os.environ.values()),
    'server_cmdline': shows(f'/proc/{SERVER}/cmdline'),
    'server_environ': shows(f'/proc/{SERVER}/environ'),
}))
"""
NOWHERE = {"environ": False, "server_cmdline": False, "server_environ": False}


def _token_source(how: str, token: str, folder: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """The server's extra arguments and environment that give it `token` `how`."""
    if how == "argv":
        return ("--auth-token", token), {}
    if how == "environment":
        return (), {"PYTHON_MCP_SERVER_AUTH_TOKEN": token}
    file = folder / "token"
    file.write_text(token + "\n")
    file.chmod(0o600)
    if how == "file":
        return ("--auth-token-file", str(file)), {}
    return (), {"PYTHON_MCP_SERVER_AUTH_TOKEN_FILE": str(file)}


@pytest.mark.parametrize(
    "how",
    [
        "file",
        "environment",
        pytest.param("file-environment", marks=pytest.mark.slow),
        pytest.param("argv", marks=pytest.mark.slow),
    ],
)
async def test_the_token_is_nowhere_a_kernel_or_a_script_can_find_it(
    workspace: Path, tmp_path: Path, how: str
) -> None:
    token = secrets.token_urlsafe(24)
    args, env = _token_source(how, token, tmp_path)
    with http_server(workspace, "--sandbox", "off", *args, env=env) as server:
        pid = server.process.pid
        code = f"REVERSED = {token[::-1]!r}\nSERVER = {pid}\n{FIND_TOKEN}"
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        async with httpx.AsyncClient(timeout=30) as plain:
            refused = await plain.post(server.url, json=ping)
        async with Client(server.url, auth=token) as client:
            cell = await call(client, "run_python_code", code=code)
            await call(client, "save_script", name="find", code=code)
            script = await call(client, "run_script", name="find")
        shown = {name: Path(f"/proc/{pid}/{name}").read_bytes() for name in ("cmdline", "environ")}
        log = server.log_text()
    assert refused.status_code == 401  # the server did take the token
    assert cell["status"] == "ok", cell
    assert json.loads(cell["stdout"]) == NOWHERE
    assert _script_report(script) == NOWHERE
    assert [name for name, text in shown.items() if token.encode() in text] == []
    warned = "the token was given with --auth-token" in log
    assert warned == (how == "argv")


def _script_report(result: dict[str, Any]) -> dict[str, bool]:
    assert result["exit_code"] == 0, result
    return dict(json.loads(result["stdout"]))


# blanks only the token: the child prints what its /proc files show after blanking, and what a
# process it starts inherits
BLANK_THEN_SHOW = """\
import json, os, subprocess, sys
from python_mcp_server.procs.startup_text import blank_startup_secret
os.environ.pop('PYTHON_MCP_SERVER_AUTH_TOKEN')
found = blank_startup_secret(sys.argv[1], '--auth-token', ['PYTHON_MCP_SERVER_AUTH_TOKEN'])
inherited = subprocess.run(['env'], capture_output=True, text=True, check=True).stdout
print(json.dumps({
    'found': [found.argv, found.environ],
    'cmdline': open('/proc/self/cmdline', 'rb').read().decode().split('\\0')[:-1],
    'environ': open('/proc/self/environ', 'rb').read().decode().split('\\0')[:-1],
    'inherited': inherited.splitlines(),
}))
"""


def test_blanking_touches_the_token_only() -> None:
    token = secrets.token_hex(12)
    argv = [token, f"--auth-token={token}", f"x{token}"]
    env = {"PYTHON_MCP_SERVER_AUTH_TOKEN": token, "OTHER": f"pre-{token}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", BLANK_THEN_SHOW, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    shown = json.loads(proc.stdout)
    stars = "*" * len(token)
    assert shown["found"] == [True, True]
    assert shown["cmdline"][-3:] == [stars, f"--auth-token={stars}", f"x{token}"]
    assert f"PYTHON_MCP_SERVER_AUTH_TOKEN={stars}" in shown["environ"]
    assert f"OTHER=pre-{token}" in shown["environ"]
    assert f"OTHER=pre-{token}" in shown["inherited"]
    assert not [line for line in shown["inherited"] if line.startswith("PYTHON_MCP_SERVER_AUTH")]
