"""The command line: flags and environment variables become the configuration; unsafe setups refuse."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from python_mcp_server import __version__
from python_mcp_server.cli import app
from tests.servers import server_command, server_env

runner = CliRunner()


def shown(args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--show-config"], env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_defaults_are_safe_and_documented() -> None:
    config = shown([])
    assert {
        k: config[k]
        for k in (
            "transport",
            "host",
            "port",
            "path",
            "execution_timeout_s",
            "max_sessions",
            "auth_token",
        )
    } == {
        "transport": "http",
        "host": "127.0.0.1",
        "port": 8000,
        "path": "/mcp",
        "execution_timeout_s": 60.0,
        "max_sessions": 16,
        "auth_token": None,
    }
    assert config["workspace_dir"] == "workspace"


def test_every_flag_can_come_from_an_environment_variable(tmp_path: Path) -> None:
    env = {
        "PYTHON_MCP_SERVER_TRANSPORT": "stdio",
        "PYTHON_MCP_SERVER_HOST": "127.0.0.2",
        "PYTHON_MCP_SERVER_PORT": "9123",
        "PYTHON_MCP_SERVER_PATH": "/rpc",
        "PYTHON_MCP_SERVER_WORKSPACE_DIR": str(tmp_path),
        "PYTHON_MCP_SERVER_EXECUTION_TIMEOUT": "5",
        "PYTHON_MCP_SERVER_MAX_SESSIONS": "3",
        "PYTHON_MCP_SERVER_LOG_LEVEL": "debug",
        "PYTHON_MCP_SERVER_AUTH_TOKEN": "tok",
    }
    config = shown([], env=env)
    assert {
        k: config[k]
        for k in (
            "transport",
            "host",
            "port",
            "path",
            "workspace_dir",
            "execution_timeout_s",
            "max_sessions",
            "log_level",
            "auth_token",
        )
    } == {
        "transport": "stdio",
        "host": "127.0.0.2",
        "port": 9123,
        "path": "/rpc",
        "workspace_dir": str(tmp_path),
        "execution_timeout_s": 5.0,
        "max_sessions": 3,
        "log_level": "DEBUG",
        "auth_token": "***",
    }


def test_mcp_workspace_dir_is_honoured(tmp_path: Path) -> None:
    assert shown([], env={"MCP_WORKSPACE_DIR": str(tmp_path)})["workspace_dir"] == str(tmp_path)


def test_a_flag_beats_the_environment(tmp_path: Path) -> None:
    config = shown(["--port", "8111"], env={"PYTHON_MCP_SERVER_PORT": "9000"})
    assert config["port"] == 8111


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"python-mcp-server {__version__}")


def test_binding_a_public_address_without_a_token_is_refused() -> None:
    result = runner.invoke(app, ["--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "Refusing to serve on '0.0.0.0' without a token" in result.stderr
    assert "--auth-token" in result.stderr


def test_a_bad_log_level_is_named() -> None:
    result = runner.invoke(app, ["--log-level", "loud"])
    assert result.exit_code == 2
    assert "unknown level 'loud'" in result.stderr


@pytest.mark.slow
def test_the_installed_command_refuses_too(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*server_command("--host", "0.0.0.0", "--workspace-dir", str(tmp_path))],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert b"Refusing to serve" in proc.stderr


def test_a_taken_port_ends_the_server_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            server_command("--port", str(port), "--workspace-dir", str(tmp_path)),
            capture_output=True,
            timeout=60,
            check=False,
            env=server_env(),
        )
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "address already in use" in err
    assert "pass --port with another port" in err
    assert "Traceback" not in err


def test_a_token_with_surrounding_spaces_is_refused() -> None:
    result = runner.invoke(app, ["--auth-token", " ", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "leading or trailing spaces" in result.stderr


def test_the_sandbox_settings_come_from_flags_and_the_environment() -> None:
    env = {
        "PYTHON_MCP_SERVER_SANDBOX": "on",
        "PYTHON_MCP_SERVER_KERNEL_MEMORY_MB": "512",
        "PYTHON_MCP_SERVER_KERNEL_MAX_PROCESSES": "64",
        "PYTHON_MCP_SERVER_KERNEL_NETWORK": "allowlist",
    }
    args = ["--kernel-cpus", "1.5", "--kernel-tmp-mb", "128"]
    args += ["--kernel-allow-host", "pypi.org", "--kernel-allow-host", "*.pythonhosted.org"]
    config = shown(args, env=env)
    sandbox_keys = (
        "sandbox",
        "kernel_memory_mb",
        "kernel_max_processes",
        "kernel_cpus",
        "kernel_tmp_mb",
        "kernel_network",
        "kernel_allow_hosts",
    )
    assert {k: config[k] for k in sandbox_keys} == {
        "sandbox": "on",
        "kernel_memory_mb": 512,
        "kernel_max_processes": 64,
        "kernel_cpus": 1.5,
        "kernel_tmp_mb": 128,
        "kernel_network": "allowlist",
        "kernel_allow_hosts": ["pypi.org", "*.pythonhosted.org"],
    }


def test_the_http_limits_come_from_flags_and_the_environment() -> None:
    keys = (
        "header_timeout_s",
        "body_timeout_s",
        "max_connections",
        "max_mcp_sessions",
        "mcp_session_unused_timeout_s",
    )
    assert {k: shown([])[k] for k in keys} == {
        "header_timeout_s": 10.0,
        "body_timeout_s": 30.0,
        "max_connections": 1024,
        "max_mcp_sessions": 256,
        "mcp_session_unused_timeout_s": 60.0,
    }
    env = {
        "PYTHON_MCP_SERVER_HEADER_TIMEOUT": "3",
        "PYTHON_MCP_SERVER_BODY_TIMEOUT": "20",
        "PYTHON_MCP_SERVER_MAX_CONNECTIONS": "100",
    }
    args = ["--max-mcp-sessions", "32", "--mcp-session-unused-timeout", "15"]
    assert {k: shown(args, env=env)[k] for k in keys} == {
        "header_timeout_s": 3.0,
        "body_timeout_s": 20.0,
        "max_connections": 100,
        "max_mcp_sessions": 32,
        "mcp_session_unused_timeout_s": 15.0,
    }


def test_the_sandbox_defaults() -> None:
    config = shown([])
    assert (config["sandbox"], config["kernel_network"], config["kernel_allow_hosts"]) == (
        "auto",
        "none",
        [],
    )
    assert (config["kernel_memory_mb"], config["kernel_max_processes"]) == (4096, 256)


def test_allowed_hosts_without_the_allowlist_policy_end_the_server_with_the_fix(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        server_command("--kernel-allow-host", "pypi.org", "--workspace-dir", str(tmp_path)),
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert (
        "python-mcp-server: --kernel-allow-host only applies with --kernel-network allowlist "
        "(it is 'none'); add --kernel-network allowlist, or drop the hosts.\n"
    ) in err
    assert "Traceback" not in err


def test_a_bad_allowed_host_pattern_ends_the_server_naming_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        server_command(
            "--kernel-network",
            "allowlist",
            "--kernel-allow-host",
            "*",
            "--workspace-dir",
            str(tmp_path),
        ),
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert "python-mcp-server: " in err
    assert "'*'" in err
    assert "Traceback" not in err
