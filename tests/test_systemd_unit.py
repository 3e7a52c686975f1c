"""deploy/systemd/python-mcp-server.service: systemd reads it without a complaint (where
`systemd-analyze` is installed), and its command line is one the CLI accepts."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from python_mcp_server.auth_token import TOKEN_ENV
from python_mcp_server.cli import app

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "systemd" / "python-mcp-server.service"
INSTALLED = "/opt/python-mcp-server/bin/python-mcp-server"


def directives() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    return [
        (key.strip(), value.strip())
        for key, _, value in (
            line.partition("=")
            for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith(("#", ";"))
        )
    ]


def value(key: str) -> str:
    (found,) = [v for k, v in directives() if k == key]
    return found


def test_systemd_reads_the_unit_without_a_complaint(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the unit, its program pointed at this environment's (the unit
    names where the install steps put it). An unknown key or a bad value is only a warning to
    systemd, so any output fails."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    program = Path(sys.executable).with_name("python-mcp-server")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(program)))
    result = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_unit_runs_the_server_with_flags_it_has(tmp_path: Path) -> None:
    argv = shlex.split(value("ExecStart"))
    assert argv[0] == INSTALLED
    token = tmp_path / "token"
    token.write_text("t" * 43 + "\n")
    token.chmod(0o600)
    args = [
        f"--auth-token-file={token}" if a.startswith("--auth-token-file=") else a for a in argv[1:]
    ]
    result = CliRunner().invoke(app, [*args, "--show-config"], env={TOKEN_ENV: None})
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert (config["transport"], config["host"], config["auth_token"]) == (
        "http",
        "127.0.0.1",
        "***",
    )
    # the workspace is in the state directory systemd makes for the user, which it may write
    state = f"/var/lib/{value('StateDirectory')}"
    assert config["workspace_dir"].startswith(f"{state}/")
    assert state in value("ReadWritePaths").split()
    assert value("User") != "root"


def test_the_unit_keeps_out_the_settings_that_break_the_sandbox() -> None:
    keys = {key for key, _ in directives()}
    breaking = {"RestrictNamespaces", "SystemCallFilter", "ProtectKernelTunables", "ProtectProc"}
    assert keys & breaking == set()
    assert value("NoNewPrivileges") == "yes"
