"""The prose pages of the docs against the real thing: the migration page names every tool of the
live catalogue and every tool of the 1.x package, the README's tools table every live tool, and every `--flag` the pages name is a flag of
the real command line (or one of another program, listed below with its owner). No kernel starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

DOCS = Path(__file__).parent.parent / "docs"
PAGES = (
    "getting-started.md",
    "clients.md",
    "sessions.md",
    "outputs.md",
    "troubleshooting.md",
    "migration.md",
)

# Data, not a result: the tools of the earlier package of the same name, read from its published
# wheels (`pip download "python-mcp-server<2" --no-deps` gives 1.0.1, the last 1.x release; and
# `pip download "python-mcp-server==0.6.2" --no-deps`), every `@mcp.tool` in
# python_mcp_server/server.py.
V1_0_1_TOOLS = (
    "run_python_code",
    "notebook",
    "list_files",
    "delete_file",
    "read_file",
    "write_file",
    "install_dependencies",
    "restart_kernel",
)
V0_6_2_TOOLS = (
    "run_python_code",
    "code_completion",
    "inspect_object",
    "list_files",
    "ping",
    "delete_file",
    "read_file",
    "write_file",
    "save_script",
    "run_script",
    "install_dependencies",
    "list_variables",
    "restart_kernel",
    "get_workspace_info",
    "get_kernel_health",
    "check_kernel_responsiveness",
    "create_session",
    "switch_session",
    "list_sessions",
    "delete_session",
)

# Flags of other programs that the pages show, and the pages they may appear on. Anything else
# that looks like a flag must be one of python-mcp-server's own.
ANY_PAGE = frozenset(PAGES)
FOREIGN_FLAGS: dict[str, tuple[str, frozenset[str]]] = {
    "--from": ("uvx", ANY_PAGE),
    "--project": ("uv run", ANY_PAGE),
    "--scope": ("claude mcp add", ANY_PAGE),
    "--header": ("claude mcp add, the MCP Inspector", ANY_PAGE),
    "--cli": ("the MCP Inspector", ANY_PAGE),
    "--method": ("the MCP Inspector", ANY_PAGE),
    "--no-deps": ("pip download", ANY_PAGE),
    "--index-url": ("pip and uv, quoted in a refusal", ANY_PAGE),
    "--workspace": ("the 1.x server", frozenset({"migration.md"})),
    "--python": ("the 1.x server", frozenset({"migration.md"})),
    "--venv": ("the 1.x server", frozenset({"migration.md"})),
    "--pythonpath": ("the 1.x server", frozenset({"migration.md"})),
}

_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
_OPTION_LINE = re.compile(r"^  (--[a-z0-9-]+)(?: / (--[a-z0-9-]+))?", re.MULTILINE)


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def cli_flags() -> set[str]:
    """The flags `python-mcp-server --help` lists (both halves of a `--x / --no-x` switch)."""
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "python_mcp_server", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return {flag for pair in _OPTION_LINE.findall(done.stdout) for flag in pair if flag}


def unknown_flags(text: str, page_name: str, real: set[str]) -> set[str]:
    """The flags `text` names that are neither the server's nor another program's allowed on
    this page."""
    named = set(_FLAG.findall(text))
    return {
        flag
        for flag in named - real
        if flag not in FOREIGN_FLAGS or page_name not in FOREIGN_FLAGS[flag][1]
    }


def missing_tools(text: str, tools: tuple[str, ...] | list[str]) -> list[str]:
    """The tools `text` does not name in code (`name` or `name(...)`)."""
    return [t for t in tools if not re.search(rf"`{re.escape(t)}[`(]", text)]


@pytest.fixture(scope="module")
def real_flags() -> set[str]:
    return cli_flags()


def test_the_help_lists_the_flags_the_checks_rely_on(real_flags: set[str]) -> None:
    assert {
        "--transport",
        "--workspace-dir",
        "--auth-token-file",
        "--no-env-prebuild",
    } <= real_flags
    assert "--help" in real_flags


@pytest.mark.parametrize("name", PAGES)
def test_every_flag_a_page_names_exists(name: str, real_flags: set[str]) -> None:
    assert unknown_flags(page(name), name, real_flags) == set()


def test_a_flag_that_does_not_exist_is_caught(real_flags: set[str]) -> None:
    text = "python-mcp-server --transport stdio --no-such-flag, or `--kernel-timeout 5`"
    assert unknown_flags(text, "clients.md", real_flags) == {"--no-such-flag", "--kernel-timeout"}
    # a flag of the 1.x server is only in place on the migration page
    assert unknown_flags("python-mcp-server --workspace dir", "clients.md", real_flags) == {
        "--workspace"
    }
    assert unknown_flags("1.x took --workspace dir", "migration.md", real_flags) == set()


def test_the_migration_page_names_every_tool_of_the_1x_package() -> None:
    text = page("migration.md")
    assert missing_tools(text, V1_0_1_TOOLS) == []
    assert missing_tools(text, V0_6_2_TOOLS) == []


@pytest.fixture
async def live_tools(config: ServerConfig) -> list[str]:
    async with Client(create_server(config)) as client:
        tools = [t.name for t in await client.list_tools()]
    assert len(tools) > 20
    return tools


@pytest.mark.anyio
async def test_the_migration_page_names_every_tool_of_the_live_catalogue(
    live_tools: list[str],
) -> None:
    assert missing_tools(page("migration.md"), live_tools) == []


def readme_tools_table() -> str:
    """The rows of the README's table under `## Tools` (the groups and their tools)."""
    text = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Tools\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| "))


@pytest.mark.anyio
async def test_the_readme_tools_table_names_every_tool_of_the_live_catalogue(
    live_tools: list[str],
) -> None:
    table = readme_tools_table()
    assert missing_tools(table, live_tools) == []
    # and a tool missing from the table would be caught
    assert missing_tools(table.replace("`run_python_code`", ""), live_tools) == ["run_python_code"]


def test_a_dropped_tool_is_caught() -> None:
    text = page("migration.md").replace("`export_notebook", "`export")
    assert missing_tools(text, ["export_notebook", "run_python_code"]) == ["export_notebook"]
