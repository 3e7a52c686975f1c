"""The three error channels: user-code failure is data, our errors reach the model, bugs are masked."""

from __future__ import annotations

import logging

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import SessionLimitError
from python_mcp_server.server import create_server
from python_mcp_server.tools._common import domain_errors

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
    assert res.content[0].text == str(SessionLimitError(1, ["default"]))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_wrong_argument_type_gets_a_validation_message(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "run_python_code", {"code": "1", "timeout_s": "soon"}, raise_on_error=False
        )
    assert res.is_error
    assert "timeout_s" in res.content[0].text


async def test_a_non_positive_timeout_is_refused(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "run_python_code", {"code": "1", "timeout_s": 0}, raise_on_error=False
        )
    assert res.is_error
    assert "timeout_s" in res.content[0].text


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
