"""install_dependencies in a sandbox of its own: wheels only unless asked, and a build that runs
hostile code (tests/fixtures/hostile_build/backend.py) reaches only the target environment.

The hostile backend records what it could read, write, signal and reach into the wheel it builds;
the test installs it and reads those records back through the kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.install import PYPI_HOSTS, index_access, install_target
from python_mcp_server.server import create_server
from tests.conftest import sandboxed
from tests.test_packages import data, uninstall

pytestmark = pytest.mark.anyio
BACKEND = Path(__file__).parent / "fixtures" / "hostile_build" / "backend.py"
SECRET = "install-sandbox-secret-" + uuid.uuid4().hex
needs_sandbox = pytest.mark.skipif(not sandboxed(), reason="kernels are not sandboxed here")


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached\n")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def loopback_port() -> Iterator[int]:
    """A plain HTTP server on the host's loopback, which the build must not reach."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def hostile_sdist(
    config: ServerConfig, tmp_path: Path, loopback_port: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """A source distribution whose build probes the sandbox; its name, path and targets."""
    monkeypatch.setenv("PYTHON_MCP_SERVER_AUTH_TOKEN", SECRET)
    name = f"pms_hostile_{uuid.uuid4().hex[:10]}"
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(SECRET)
    target = {
        "name": name,
        "version": "1.0",
        "workspace_file": str(config.workspace_root / "written-by-build.txt"),
        "outside_file": str(tmp_path / "written-outside.txt"),
        "secret_file": str(secret_file),
        "server_pid": os.getpid(),
        "port": loopback_port,
        "secret": SECRET,
    }
    folder = tmp_path / f"{name}-1.0"
    folder.mkdir()
    shutil.copy(BACKEND, folder / "backend.py")
    (folder / "probe.json").write_text(json.dumps(target))
    (folder / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
    )
    sdist = config.workspace_root / f"{name}-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    yield name, sdist, target
    uninstall(name)


@needs_sandbox
async def test_a_source_build_is_refused_unless_allowed(
    config: ServerConfig, hostile_sdist: tuple[str, Path, dict[str, Any]]
) -> None:
    _, sdist, target = hostile_sdist
    async with Client(create_server(replace(config, allow_local_package_paths=True))) as client:
        res = data(await client.call_tool("install_dependencies", {"packages": [str(sdist)]}))
    assert (res["status"], res["sandboxed"], res["source_builds"]) == ("failed", True, False)
    assert "--only-binary" in res["command"]
    [package] = res["packages"]
    assert package["status"] == "failed"
    assert "allow_source_builds=true" in package["reason"]
    assert not Path(target["workspace_file"]).exists()


@needs_sandbox
async def test_a_hostile_build_reaches_only_the_target_environment(
    config: ServerConfig, hostile_sdist: tuple[str, Path, dict[str, Any]], loopback_port: int
) -> None:
    name, sdist, target = hostile_sdist
    args = {"packages": [str(sdist)], "allow_source_builds": True}
    async with Client(create_server(replace(config, allow_local_package_paths=True))) as client:
        res = data(await client.call_tool("install_dependencies", args))
        run = data(
            await client.call_tool(
                "run_python_code", {"code": f"import {name}\nprint({name}.PROBES_JSON)"}
            )
        )
    assert (res["status"], res["sandboxed"], res["source_builds"]) == ("ok", True, True), res
    assert "--only-binary" not in res["command"]
    probes = json.loads(run["stdout"])
    for probe in ("shadow", "host_file", "write_workspace", "signal_server"):
        assert probes[probe].startswith("refused"), (probe, probes[probe])
    # the build may write its private /tmp (where the folder of outside_file exists, made for
    # the workspace's mount); what counts is that nothing lands on the host
    assert probes["direct_connect"].startswith("refused"), probes
    assert probes["proxied_connect"].startswith("refused"), probes
    assert probes["secret"] == "absent", probes
    assert int(probes["capabilities"], 16) == 0, probes
    assert not Path(target["workspace_file"]).exists()
    assert not Path(target["outside_file"]).exists()
    [refused] = res["refused_hosts"]
    assert refused.startswith(f"127.0.0.1:{loopback_port} "), refused
    assert "refused connections to 127.0.0.1" in res["message"]


@needs_sandbox
async def test_a_plain_wheel_installs_sandboxed(config: ServerConfig, tmp_path: Path) -> None:
    from tests.test_packages import build_wheel

    name = f"pms_plain_{uuid.uuid4().hex[:10]}"
    wheel = build_wheel(config.workspace_root, name, "2.5")
    try:
        async with Client(create_server(replace(config, allow_local_package_paths=True))) as client:
            res = data(await client.call_tool("install_dependencies", {"packages": [str(wheel)]}))
            run = data(
                await client.call_tool(
                    "run_python_code", {"code": f"import {name}\n{name}.VERSION"}
                )
            )
    finally:
        uninstall(name)
    assert (res["status"], res["sandboxed"], res["refused_hosts"]) == ("ok", True, []), res
    assert run["result"] == "'2.5'"


def test_installs_reach_pypi_when_no_index_is_configured() -> None:
    access = index_access({})
    assert (access.hosts, access.folders) == (PYPI_HOSTS, ())


def test_a_configured_index_replaces_pypi_and_local_folders_are_read_only(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    environ = {
        "UV_INDEX_URL": "https://user:pw@mirror.example.org:8443/simple",
        "UV_INDEX": "internal=https://pkgs.example.com/simple other=https://a.example.net/",
        "PIP_EXTRA_INDEX_URL": f"file://{tmp_path}/missing file://{wheels}",
        "UV_FIND_LINKS": f"{wheels},https://downloads.example.io/wheels/",
    }
    access = index_access(environ, ("cdn.example.org",))
    assert access.hosts == (
        "mirror.example.org:8443",
        "pkgs.example.com",
        "a.example.net",
        "downloads.example.io",
        "cdn.example.org",
    )
    assert access.folders == (wheels,)


def test_a_local_default_index_does_not_open_pypi(tmp_path: Path) -> None:
    access = index_access({"UV_DEFAULT_INDEX": f"file://{tmp_path}"})
    assert (access.hosts, access.folders) == ((), (tmp_path,))


def test_the_install_writes_only_the_environment_and_never_the_system() -> None:
    venv, base = Path("/srv/app/.venv"), Path("/opt/python/3.12")
    assert install_target(venv, base) == venv
    assert install_target(
        Path("/root/.pyenv/versions/3.12.1"), Path("/root/.pyenv/versions/3.12.1")
    ) == Path("/root/.pyenv/versions/3.12.1")
    for system in ("/usr", "/usr/local", "/", "/opt"):
        assert install_target(Path(system), Path(system)) is None


def test_a_bad_install_allow_host_is_refused_naming_its_own_flag(config: ServerConfig) -> None:
    from python_mcp_server.errors import ConfigError
    from python_mcp_server.sandbox.host import plan_sandbox
    from python_mcp_server.services._installer import InstallSandbox

    bad = replace(config, install_allow_hosts=("https://pypi.org/simple",))
    with pytest.raises(ConfigError) as refused:
        InstallSandbox(plan_sandbox(bad), bad)
    assert str(refused.value).startswith("--install-allow-host 'https://pypi.org/simple': give")
