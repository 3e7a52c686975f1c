"""The single-container image (Dockerfile, compose.yaml, .dockerignore at the root): hadolint
passes every Dockerfile in the repository, and the image's command, health check, volume, user
and build arguments agree with the CLI, the compose file and pyproject.toml.

No container engine runs here: nothing is built or started (docs/deploy.md, section Docker, says
what was checked instead). The compose file's schema check is in tests/test_deploy.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from python_mcp_server.auth_token import TOKEN_ENV
from python_mcp_server.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def one(steps: list[tuple[str, str]], word: str) -> str:
    (found,) = [rest for w, rest in steps if w == word]
    return found


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def dockerfiles() -> list[Path]:
    found = [p for p in ROOT.rglob("*Dockerfile") if ".venv" not in p.parts]
    return sorted(p for p in found if not any(part.startswith(".") for part in p.parts[-3:]))


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing_in_the_dockerfile(dockerfile: Path) -> None:
    """At hadolint's default threshold (info): every exception is an inline, explained ignore."""
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    """The linter runs for real: a Dockerfile with an unpinned base and root user fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert {"DL3006", "DL3008"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_the_image_is_built_in_two_stages_from_a_pinned_slim_python() -> None:
    steps = instructions(DOCKERFILE)
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", image), image
    assert [rest for word, rest in steps if word == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE}",
    ]
    runtime = final_stage(DOCKERFILE)
    assert any("apt-get install" in rest and "bubblewrap" in rest for w, rest in runtime)
    assert one(runtime, "COPY") == "--from=build /opt/venv /opt/venv"


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    runtime = final_stage(DOCKERFILE)
    (uid,) = re.findall(r"^ARG UID=(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert int(uid) >= 1000
    assert one(runtime, "USER") == "${UID}:${UID}"


def test_the_command_is_one_the_cli_accepts_and_binds_every_address_with_a_token(
    tmp_path: Path,
) -> None:
    runtime = final_stage(DOCKERFILE)
    assert json.loads(one(runtime, "ENTRYPOINT")) == ["python-mcp-server"]
    command = json.loads(one(runtime, "CMD"))
    (token_flag,) = [a for a in command if a.startswith("--auth-token-file=")]
    token = tmp_path / "token"
    token.write_text("x" * 32 + "\n")
    token.chmod(0o600)
    args = [f"--auth-token-file={token}" if a == token_flag else a for a in command]
    image_env = dict(re.findall(r"(\w+)=(\S+)", one(runtime, "ENV")))
    env: dict[str, str | None] = {
        k: v for k, v in image_env.items() if k.startswith("PYTHON_MCP_SERVER_")
    }
    env[TOKEN_ENV] = None
    result = CliRunner().invoke(app, [*args, "--show-config"], env=env)
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert (config["transport"], config["host"], config["auth_token"]) == ("http", "0.0.0.0", "***")
    assert one(runtime, "EXPOSE") == str(config["port"])
    assert json.loads(one(runtime, "VOLUME")) == [config["workspace_dir"]]
    # compose mounts the secret where the command reads it
    (secret,) = compose()["services"]["server"]["secrets"]
    assert token_flag == f"--auth-token-file=/run/secrets/{secret}"


def test_the_health_check_asks_health_on_the_served_port_without_curl() -> None:
    runtime = final_stage(DOCKERFILE)
    health = one(runtime, "HEALTHCHECK")
    check = json.loads(health[health.index("CMD ") + 4 :])
    assert check[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{one(runtime, 'EXPOSE')}/health" in check[2]
    assert "curl" not in DOCKERFILE.read_text()


def test_the_build_arguments_compose_passes_are_the_dockerfiles() -> None:
    text = DOCKERFILE.read_text()
    build = compose()["services"]["server"]["build"]
    assert build["context"] == "."
    for name in build["args"]:
        assert re.search(rf"^ARG {name}=", text, re.MULTILINE), name
    assert re.search(r'^ARG EXTRAS=""$', text, re.MULTILINE)
    assert "datascience" in PROJECT["optional-dependencies"]
    assert '"$1${EXTRAS:+[$EXTRAS]}"' in text


def test_the_build_context_sends_what_the_dockerfile_copies_and_no_secrets() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert "*" in (ROOT / ".dockerignore").read_text().splitlines()
    copies = [rest for word, rest in instructions(DOCKERFILE) if word == "COPY"]
    sources = [s for c in copies if not c.startswith("--from") for s in c.split()[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source in allowed, source
    for secret in ("mcp-auth-token", ".env", ".venv", "workspace"):
        assert secret not in allowed


def test_compose_publishes_on_loopback_keeps_the_workspace_and_lets_the_sandbox_work() -> None:
    server = compose()["services"]["server"]
    assert server["ports"] == ["127.0.0.1:8000:8000"]
    assert "workspace:/workspace" in server["volumes"]
    assert server["cap_drop"] == ["ALL"]
    assert set(server["security_opt"]) == {
        "seccomp=unconfined",
        "apparmor=unconfined",
        "systempaths=unconfined",
        "no-new-privileges:true",
    }
    assert compose()["secrets"] == {"mcp_auth_token": {"file": "./mcp-auth-token"}}
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/mcp-auth-token" in ignored
    assert "/.env" in ignored


def test_the_home_cache_volume_exists_in_the_image_owned_by_the_user() -> None:
    """A named volume takes the owner of the image's folder; a folder the image lacks is made
    root's, which the server could not write."""
    mounts = [v.split(":")[1] for v in compose()["services"]["server"]["volumes"]]
    text = instructions(DOCKERFILE)
    made = " ".join(rest for word, rest in text if word == "RUN")
    for mount in mounts:
        assert mount in made, mount


def test_the_two_compose_setups_never_overwrite_each_others_images_or_volumes() -> None:
    """compose.yaml here and deploy/compose/compose.yaml build different images: the same
    project name or image tag would let one replace the other's."""
    other = dict(yaml.safe_load((ROOT / "deploy" / "compose" / "compose.yaml").read_text()))
    assert compose()["name"] != other["name"]
    images = {s["image"] for s in other["services"].values()}
    assert compose()["services"]["server"]["image"] not in images
