"""The command line: flags and environment variables become the configuration; unsafe setups refuse."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, fields
from pathlib import Path

import httpx
import pytest
import typer.main
from packaging.version import Version
from typer.core import TyperOption
from typer.testing import CliRunner

from python_mcp_server import __version__
from python_mcp_server.cli import app, port_problem
from python_mcp_server.config import ServerConfig
from tests.servers import server_command, server_env, stop

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
OPTIONS: dict[str, TyperOption] = {
    p.name: p for p in typer.main.get_command(app).params if isinstance(p, TyperOption) and p.name
}


def env_var(flag: str) -> str:
    """A flag's environment variable: `--kernel-tmp-mb` -> PYTHON_MCP_SERVER_KERNEL_TMP_MB."""
    return "PYTHON_MCP_SERVER_" + flag.removeprefix("--").upper().replace("-", "_")


# ServerConfig settings that have no flag, each with the reason (none today: a deployment may
# need every one of them)
NO_FLAG: dict[str, str] = {}


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


def test_the_bound_on_session_outputs_comes_from_a_flag_or_the_environment() -> None:
    assert shown([])["max_outputs_mb"] == 1024
    assert shown(["--max-outputs-mb", "0"])["max_outputs_mb"] == 0
    assert shown([], env={"PYTHON_MCP_SERVER_MAX_OUTPUTS_MB": "64"})["max_outputs_mb"] == 64


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


def test_a_taken_port_ends_the_server_with_the_fix_before_anything_starts(tmp_path: Path) -> None:
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
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err == (
        f"python-mcp-server: cannot serve on 127.0.0.1:{port}: the address is already in use "
        "(another process listens there, often a second copy of this server); stop it, or pass "
        "--port with another port (--port 0 picks a free one)\n"
    )
    assert "kernel sandbox" not in err  # refused before the services (and their kernels) start


def test_a_port_out_of_range_is_refused_by_the_option() -> None:
    result = runner.invoke(app, ["--port", "70000"])
    assert result.exit_code == 2
    assert "Input should be less than or equal to 65535" in result.stderr


def test_a_port_that_cannot_be_had_is_named_with_the_fix() -> None:
    assert port_problem("127.0.0.1", 0) is None  # any free port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert port_problem("127.0.0.1", free) is None
    with socket.socket() as again:  # and the check let it go
        again.bind(("127.0.0.1", free))
    unreachable = port_problem("192.0.2.1", free)  # TEST-NET-1: no machine's own address
    assert unreachable == (
        f"cannot serve on 192.0.2.1:{free}: this machine has no such address; pass --host with "
        "one of its own"
    )
    unknown = port_problem("no-such-host.invalid", free)
    assert unknown is not None
    assert unknown.startswith(
        f"cannot serve on no-such-host.invalid:{free}: 'no-such-host.invalid'"
    )
    assert unknown.endswith("; pass --host with an address")


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


# the token ------------------------------------------------------------------------------------


def _token_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_token_file_gives_its_first_line_by_flag_or_variable(tmp_path: Path) -> None:
    from python_mcp_server.auth_token import resolve_token

    token = "t0k3n-" * 4
    path = _token_file(tmp_path, f"{token}\r\nignored\n")
    assert resolve_token(None, path, tmp_path / "workspace") == token
    by_flag = shown(["--auth-token-file", str(path)])
    by_variable = shown([], env={"PYTHON_MCP_SERVER_AUTH_TOKEN_FILE": str(path)})
    assert by_flag["auth_token"] == by_variable["auth_token"] == "***"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620])
def test_a_token_file_other_users_can_read_is_refused_naming_chmod_600(
    tmp_path: Path, mode: int
) -> None:
    path = _token_file(tmp_path, "s3cret-s3cret-s3cret\n", mode)
    result = runner.invoke(app, ["--auth-token-file", str(path), "--show-config"])
    assert result.exit_code == 2
    assert f"other users can read or change {path} (mode {mode:04o}); run chmod 600 {path}" in (
        result.stderr
    )
    assert "s3cret" not in result.output


def test_a_token_file_in_the_workspace_is_refused(tmp_path: Path) -> None:
    path = _token_file(tmp_path, "s3cret-s3cret-s3cret\n")
    result = runner.invoke(
        app, ["--auth-token-file", str(path), "--workspace-dir", str(tmp_path), "--show-config"]
    )
    assert result.exit_code == 2
    assert "is inside the workspace" in result.stderr


def test_a_token_given_two_ways_is_refused(tmp_path: Path) -> None:
    path = _token_file(tmp_path, "s3cret-s3cret-s3cret\n")
    env = {"PYTHON_MCP_SERVER_AUTH_TOKEN": "other-other-other-other"}
    result = runner.invoke(app, ["--auth-token-file", str(path), "--show-config"], env=env)
    assert result.exit_code == 2
    assert "give the token one way only" in result.stderr


def test_a_token_that_looks_like_a_flag_is_refused() -> None:
    # `--auth-token --show-config --host 0.0.0.0` used to serve on 0.0.0.0 with the token
    # '--show-config'; the second --show-config keeps a run that accepts it from serving
    result = runner.invoke(app, ["--auth-token", "--show-config", "--show-config"])
    assert result.exit_code == 2
    assert "'--show-config' looks like a flag, not a token" in result.stderr
    assert "--auth-token-file" in result.stderr
    # a random token may start with '-'
    assert shown(["--auth-token", "-xY_9-zk3Qw8-Lm2Rt"])["auth_token"] == "***"


def test_a_short_token_is_refused_off_loopback_but_accepted_on_it(tmp_path: Path) -> None:
    from python_mcp_server.auth_token import check_exposure

    # a file as the workspace ends a run that got past the token check before it serves
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")

    def start(*args: str) -> str:
        proc = subprocess.run(
            server_command(*args, "--workspace-dir", str(not_a_folder)),
            capture_output=True,
            timeout=60,
            check=False,
            env=server_env(),
        )
        assert proc.returncode == 2, proc.stderr
        return proc.stderr.decode()

    refused = start("--host", "0.0.0.0", "--auth-token", "fifteen-chars-x")
    assert "with a token of 15 characters: use at least 16" in refused
    assert "cannot use --workspace-dir" in start("--host", "0.0.0.0", "--auth-token", "x" * 16)
    assert "cannot use --workspace-dir" in start("--auth-token", "short")
    assert check_exposure(ServerConfig(host="localhost", auth_token="short")) is None


# the workspace, the port, --version -------------------------------------------------------------


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this user cannot write in (root can write in any folder but some of /sys)."""
    if os.geteuid() == 0:
        folder = Path("/sys")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pytest.skip(f"{folder} is writable here")
    except OSError:
        return folder


@pytest.mark.parametrize("case", ["a file", "under a file", "unwritable"])
def test_an_unusable_workspace_ends_with_one_line_naming_it_and_the_fix(
    tmp_path: Path, case: str
) -> None:
    file = tmp_path / "file"
    file.write_text("")
    workspace = {"a file": file, "under a file": file / "sub"}.get(case)
    workspace = workspace or _unwritable_folder(tmp_path)
    proc = subprocess.run(
        server_command("--workspace-dir", str(workspace), "--port", "1"),
        capture_output=True,
        timeout=60,
        check=False,
        env=server_env(),
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert err.startswith(f"python-mcp-server: cannot use --workspace-dir {workspace}: ")
    assert err.endswith("with a folder this user can create and write in\n")
    assert err.count("\n") == 1


def test_port_0_serves_on_a_free_port_that_the_log_names_once_bound(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    workspace = tmp_path / "workspace"
    cmd = server_command(
        "--port", "0", "--workspace-dir", str(workspace), "--kernel-pool-size", "0"
    )
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=server_env())
    try:
        deadline = time.monotonic() + 60
        while not (
            found := re.search(
                r"serving MCP on http://127\.0\.0\.1:(\d+)/mcp\n", text := log.read_text()
            )
        ):
            assert proc.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        # once the line is out the port is bound: one request, no retry
        health = httpx.get(f"http://127.0.0.1:{found[1]}/health", timeout=30)
    finally:
        stop(proc)
    assert health.status_code == 200
    assert text.index("Uvicorn running on") < found.start()
    assert text.count("serving MCP") == 1


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["--show-config"]])
def test_version_help_and_show_config_do_not_import_the_server(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "python_mcp_server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "python_mcp_server.cli" in imported
    heavy = {"fastmcp", "mcp", "jupyter_client", "uvicorn", "starlette", "zmq", "psutil"}
    heavy |= {"ipykernel", "numpy", "httpx", "key_value"}
    if args != ["--show-config"]:  # typer checks the values of a run's flags with pydantic
        heavy.add("pydantic")
    assert sorted(m for m in imported if m.split(".")[0] in heavy) == []
    if args == ["--version"]:
        assert proc.stdout == f"python-mcp-server {__version__}\n"
    if args == ["--help"]:
        assert proc.stdout.startswith("Usage: python -m python_mcp_server [OPTIONS]")


# every setting, its flag, its variable, its documentation ---------------------------------------


def _envvars(option: TyperOption) -> list[str]:
    return [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or ())


def test_every_setting_has_a_flag_and_an_environment_variable() -> None:
    for setting in fields(ServerConfig):
        if setting.name in NO_FLAG:
            continue
        option = OPTIONS.get(setting.name)
        assert option is not None, (
            f"ServerConfig.{setting.name} has no flag: add one to cli.py, its parameter named "
            "as the setting, and a row to docs/configuration.md"
        )
        assert env_var(option.opts[0]) in _envvars(option), option.opts


def test_every_setting_comes_from_its_environment_variable(tmp_path: Path) -> None:
    samples: dict[str, tuple[str, object]] = {
        "workspace_dir": (str(tmp_path), str(tmp_path)),
        "transport": ("stdio", "stdio"),
        "host": ("127.0.0.3", "127.0.0.3"),
        "path": ("/rpc", "/rpc"),
        "log_level": ("debug", "DEBUG"),
        "auth_token": ("a-token-of-some-length", "***"),
        "kernel_python": ("/usr/bin/python3", "/usr/bin/python3"),
        "sandbox": ("off", "off"),
        "kernel_network": ("full", "full"),
        "kernel_allow_hosts": ("pypi.org", ["pypi.org"]),
        "install_allow_hosts": ("mirror.example.org", ["mirror.example.org"]),
        "env_dir": ("/srv/envs", "/srv/envs"),
        "kernel_cpus": ("1.5", 1.5),
        "kernel_gateway_url": ("http://gateway.example:8888/", "http://gateway.example:8888"),
        "kernel_gateway_token": ("a-gateway-token", "***"),
        "kernel_gateway_kernel": ("python_kubernetes", "python_kubernetes"),
        "kernel_gateway_user": ("alice", "alice"),
        "kernel_gateway_workdir": ("/workspace", "/workspace"),
    }
    defaults = ServerConfig()
    env: dict[str, str] = {}
    expected: dict[str, object] = {}
    for setting in fields(ServerConfig):
        if setting.name in NO_FLAG:
            continue
        default = getattr(defaults, setting.name)
        if setting.name in samples:
            value, shown_as = samples[setting.name]
        elif isinstance(default, bool):
            value, shown_as = str(not default).lower(), not default
        elif isinstance(default, int | float):
            shown_as = default + (1 if isinstance(default, int) else 0.5)
            value = str(shown_as)
        else:
            raise AssertionError(f"add a sample value for {setting.name} to this test")
        env[_envvars(OPTIONS[setting.name])[0]] = value
        expected[setting.name] = shown_as
    config = shown([], env=env)
    assert {name: config[name] for name in expected} == expected


def test_the_flags_default_to_the_settings_defaults() -> None:
    config = shown([])
    config.pop("workspace_root")
    assert config == json.loads(json.dumps(asdict(ServerConfig()), default=str))


def test_the_configuration_table_lists_every_flag_and_its_variable() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `--")]
    for option in OPTIONS.values():
        flag = option.opts[0]
        if flag == "--help":
            continue
        row = next((r for r in rows if r.startswith(f"| `{flag}`")), None)
        assert row is not None, f"{flag} is missing from docs/configuration.md's table"
        for name in _envvars(option):
            assert f"`{name}`" in row, f"{flag}'s row does not name {name}"


def test_the_readme_installs_version_2_not_the_unrelated_1x_package() -> None:
    readme = (ROOT / "README.md").read_text()
    installs = [
        line
        for line in readme.splitlines()
        if ("pip install" in line or "uvx" in line) and "python-mcp-server" in line
    ]
    assert installs
    for line in installs:
        assert re.search(r"python-mcp-server(\[\w+\])?>=2", line), line
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert Version(project["version"]) >= Version("2.0.0.dev0")
    assert __version__ == project["version"]


# the kernel gateway ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://gateway:8888", "must start with http:// or https://"),
        ("http://", "names no host"),
        ("http://alice:secret@gateway:8888", "carries credentials"),
        ("http://gateway:8888/?token=abc", "query or fragment"),
        ("http://gateway:99999", "port is not a number"),
    ],
)
def test_a_bad_gateway_url_is_refused_naming_its_flag(url: str, why: str) -> None:
    result = runner.invoke(app, ["--kernel-gateway-url", url, "--show-config"])
    assert result.exit_code == 2
    assert "--kernel-gateway-url" in result.stderr
    assert why in result.stderr
    assert "secret" not in result.stderr  # a password in the URL is never echoed


def test_the_gateway_token_is_masked_and_read_from_a_private_file(tmp_path: Path) -> None:
    token = _token_file(tmp_path, "gateway-token-from-a-file\n")
    config = shown(
        [
            "--kernel-gateway-url",
            "https://gw.example/base/",
            "--kernel-gateway-token-file",
            str(token),
        ]
    )
    assert config["kernel_gateway_url"] == "https://gw.example/base"
    assert config["kernel_gateway_token"] == "***"
    assert "gateway-token-from-a-file" not in json.dumps(config)


def test_a_gateway_token_file_others_can_read_is_refused_naming_its_flag(tmp_path: Path) -> None:
    token = _token_file(tmp_path, "gateway-token\n", mode=0o644)
    result = runner.invoke(app, ["--kernel-gateway-token-file", str(token), "--show-config"])
    assert result.exit_code == 2
    assert "--kernel-gateway-token-file" in result.stderr
    assert "chmod 600" in result.stderr


def test_the_gateway_token_given_two_ways_is_refused(tmp_path: Path) -> None:
    token = _token_file(tmp_path, "gateway-token\n")
    args = ["--kernel-gateway-token", "x-token", "--kernel-gateway-token-file", str(token)]
    result = runner.invoke(app, [*args, "--show-config"])
    assert result.exit_code == 2
    assert "one way only" in result.stderr
