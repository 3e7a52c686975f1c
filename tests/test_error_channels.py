"""The three error channels: user-code failure is data, our errors reach the model, bugs are masked."""

from __future__ import annotations

import logging

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import SessionLimitError
from python_mcp_server.server import create_server
from python_mcp_server.tools._common import domain_errors
from tests.helpers import error

pytestmark = pytest.mark.anyio


async def test_a_bug_is_masked_for_the_client_and_logged_with_its_traceback(
    config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    server = create_server(config)

    @server.tool
    async def broken_tool() -> str:
        """A tool with a bug in it."""
        raise ValueError("internal detail the client must not see")

    with caplog.at_level(logging.ERROR):
        async with Client(server) as client:
            res = await client.call_tool("broken_tool", {}, raise_on_error=False)
    assert res.is_error
    assert res.content[0].text == "Error calling tool 'broken_tool'"
    assert any(r.exc_info and "internal detail" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_server_error_reaches_the_model_word_for_word_and_is_not_logged_as_error(
    config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    server = create_server(config)

    @server.tool
    @domain_errors
    async def limited_tool() -> str:
        """A tool that hits a limit."""
        raise SessionLimitError(1, ["default"])

    with caplog.at_level(logging.INFO):
        async with Client(server) as client:
            res = await client.call_tool("limited_tool", {}, raise_on_error=False)
    assert res.is_error
    message = str(SessionLimitError(1, ["default"]))
    assert res.content[0].text == message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # one INFO line, the call log's, says it was refused and why; nothing at INFO reads like the
    # "Error calling tool" of a bug
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in lines if "Error calling tool" in line], lines
    refused = [line for line in lines if line.startswith("tool limited_tool refused in ")]
    assert len(refused) == 1, lines
    assert f" ms: {message[:60]}" in refused[0], refused


async def test_a_wrong_argument_type_gets_a_validation_message(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "run_python_code", {"code": "1", "timeout_s": "soon"}, raise_on_error=False
        )
    assert res.is_error
    assert res.content[0].text == (
        "Invalid arguments for run_python_code: timeout_s: Input should be a valid number, unable "
        "to parse string as a number (got 'soon'). The tool's input schema lists each argument "
        "with its type and limits."
    )


async def test_a_non_positive_timeout_and_a_missing_argument_are_named(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        zero = await error(client, "run_python_code", code="1", timeout_s=0)
        missing = await error(client, "run_python_code", timeout_s=5)
        unknown = await error(client, "list_files", path=".", colour="blue")
    assert zero.startswith(
        "Invalid arguments for run_python_code: timeout_s: Input should be a finite number of "
        "seconds above 0 and at most 86400 (got 0)."
    )
    assert missing.startswith(
        "Invalid arguments for run_python_code: code: Missing required argument. "
    )
    assert unknown.startswith(
        "Invalid arguments for list_files: colour: Unexpected keyword argument (got 'blue')."
    )
    assert "pydantic" not in zero + missing + unknown


async def test_every_tool_has_a_description_an_output_schema_and_annotations(
    config: ServerConfig,
) -> None:
    async with Client(create_server(config)) as client:
        tools = await client.list_tools()
    for tool in tools:
        assert tool.description, tool.name
        assert len(tool.description) > 40, tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.annotations is not None, tool.name
        assert tool.annotations.read_only_hint is not None, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


async def test_the_call_log_names_a_cell_that_raised(
    config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="python_mcp_server.calls"):
        async with Client(create_server(config)) as client:
            await client.call_tool("run_python_code", {"code": "1 / 0"})
            await client.call_tool("run_python_code", {"code": "1"})
    lines = [r.getMessage() for r in caplog.records if r.name == "python_mcp_server.calls"]
    assert lines[0].startswith("tool run_python_code ok, status error in ")
    assert lines[1].startswith("tool run_python_code ok in ")
